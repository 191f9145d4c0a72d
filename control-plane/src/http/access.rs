//! Who may call what: every `/api/v1` route, as the router matched it (method and route
//! pattern, never a substring of the path), and the roles that reach it. One table, read by the
//! auth middleware; a route missing from it is refused to everyone (and fails the test that walks
//! the router's routes, `tests/access.rs`).

use axum::http::Method;

use crate::keys::Role;

/// Which roles reach a route. `Admin` reaches every route in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every role, ingest and assign included (`whoami`).
    Anyone,
    /// Admin and read keys.
    Read,
    /// Admin keys only.
    Admin,
    /// Admin and ingest keys (the edge worker's service key).
    Ingest,
    /// Admin and assign keys (services asking for assignments).
    Assign,
}

/// Every `/api/v1` route behind the auth middleware: method, pattern (as `MatchedPath` spells it),
/// access. The live socket authenticates itself (`live.rs`) and is not here.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/api/v1/whoami", Access::Anyone),
    ("GET", "/api/v1/experiments", Access::Read),
    ("POST", "/api/v1/experiments", Access::Admin),
    ("GET", "/api/v1/experiments/{id}", Access::Read),
    ("PATCH", "/api/v1/experiments/{id}", Access::Admin),
    ("DELETE", "/api/v1/experiments/{id}", Access::Admin),
    ("POST", "/api/v1/experiments/{id}/launch", Access::Admin),
    ("POST", "/api/v1/experiments/{id}/pause", Access::Admin),
    ("POST", "/api/v1/experiments/{id}/stop", Access::Admin),
    ("GET", "/api/v1/experiments/{id}/audit", Access::Read),
    ("GET", "/api/v1/experiments/{id}/results", Access::Read),
    ("GET", "/api/v1/experiments/{id}/timeseries", Access::Read),
    ("GET", "/api/v1/experiments/{id}/watch", Access::Read),
    ("GET", "/api/v1/experiments/{id}/bandit", Access::Read),
    ("GET", "/api/v1/experiments/{id}/bandit/history", Access::Read),
    ("POST", "/api/v1/assign", Access::Assign),
    ("POST", "/api/v1/events/exposure", Access::Ingest),
    ("POST", "/api/v1/events/metric", Access::Ingest),
    ("POST", "/api/v1/events/conversion", Access::Ingest),
    ("POST", "/api/v1/events/batch", Access::Ingest),
    // Pure computation, no data: any reader may size an experiment.
    ("POST", "/api/v1/sample-size", Access::Read),
    ("GET", "/api/v1/saved-groups", Access::Read),
    ("GET", "/api/v1/saved-groups/{id}", Access::Read),
    ("PUT", "/api/v1/saved-groups/{id}", Access::Admin),
    ("DELETE", "/api/v1/saved-groups/{id}", Access::Admin),
    ("GET", "/api/v1/edge/config", Access::Read),
    ("GET", "/api/v1/alerts", Access::Read),
    ("POST", "/api/v1/alerts/{id}/acknowledge", Access::Admin),
    ("GET", "/api/v1/webhooks", Access::Read),
    ("POST", "/api/v1/webhooks", Access::Admin),
    ("DELETE", "/api/v1/webhooks/{id}", Access::Admin),
    ("GET", "/api/v1/webhooks/{id}/deliveries", Access::Read),
    ("GET", "/api/v1/keys", Access::Admin),
    ("POST", "/api/v1/keys", Access::Admin),
    ("DELETE", "/api/v1/keys/{id}", Access::Admin),
];

/// The access of a matched route; `None` for a route the table does not know (refused). `HEAD`
/// is a `GET` without its body.
pub fn of(method: &Method, route: &str) -> Option<Access> {
    let method = if *method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTES.iter().find(|(m, r, _)| *m == method && *r == route).map(|(_, _, a)| *a)
}

/// Whether `role` reaches a route of `access`.
pub fn allows(role: Role, access: Access) -> bool {
    matches!(
        (role, access),
        (Role::Admin, _) | (_, Access::Anyone) | (Role::Read, Access::Read) | (Role::Ingest, Access::Ingest) | (Role::Assign, Access::Assign)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_reach_what_the_table_says() {
        let post = Method::POST;
        assert_eq!(of(&post, "/api/v1/events/batch"), Some(Access::Ingest));
        // An experiment named `events` is not an events route.
        assert_eq!(of(&post, "/api/v1/experiments/{id}/launch"), Some(Access::Admin));
        assert!(!allows(Role::Ingest, Access::Admin));
        assert!(!allows(Role::Ingest, Access::Read));
        assert!(allows(Role::Assign, Access::Assign) && !allows(Role::Assign, Access::Read));
        assert!(!allows(Role::Read, Access::Ingest) && !allows(Role::Read, Access::Assign));
        assert_eq!(of(&Method::HEAD, "/api/v1/experiments"), Some(Access::Read));
        assert_eq!(of(&Method::GET, "/api/v1/nowhere"), None);
        for role in Role::ALL {
            assert!(allows(role, Access::Anyone));
            assert!(allows(Role::Admin, Access::Read) && (role == Role::Admin || !allows(role, Access::Admin)));
        }
    }
}
