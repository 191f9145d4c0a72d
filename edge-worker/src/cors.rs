//! CORS for the public routes, so browsers can call the edge directly.
//!
//! `ALLOWED_ORIGINS="*"` answers `Access-Control-Allow-Origin: *` (no cookies cross-site: browsers
//! refuse credentials with a wildcard). A comma list echoes the caller's origin when it is listed
//! and allows credentials, so the `litmus_uid` cookie works from those sites.

use std::borrow::Cow;

use worker::{Headers, Request, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(raw: &str) -> Self {
        let list: Vec<String> =
            raw.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
        if list.is_empty() || list.iter().any(|o| o == "*") { Self::Any } else { Self::List(list) }
    }

    /// The headers to add for a request from `origin`; empty when the origin is not allowed, which
    /// makes the browser block the response.
    pub fn headers_for(&self, origin: Option<&str>) -> Vec<(&'static str, Cow<'static, str>)> {
        match self {
            Self::Any => vec![("access-control-allow-origin", Cow::Borrowed("*"))],
            Self::List(list) => {
                // Caches must not serve one origin's answer to another.
                let mut h = vec![("vary", Cow::Borrowed("Origin"))];
                if let Some(o) = origin.filter(|o| list.iter().any(|allowed| allowed == o)) {
                    h.push(("access-control-allow-origin", Cow::Owned(o.to_owned())));
                    h.push(("access-control-allow-credentials", Cow::Borrowed("true")));
                }
                h
            }
        }
    }

    /// Whether the answer depends on the request's `Origin`.
    pub fn by_origin(&self) -> bool {
        matches!(self, Self::List(_))
    }
}

fn origin(req: &Request) -> Option<String> {
    req.headers().get("origin").ok().flatten()
}

pub fn apply(allowed: &AllowedOrigins, req: &Request, resp: &mut Response) {
    set_all(resp.headers_mut(), allowed.headers_for(origin(req).as_deref()));
}

/// The answer to a preflight `OPTIONS`.
pub fn preflight(allowed: &AllowedOrigins, req: &Request) -> Response {
    let mut resp = Response::builder().with_status(204).empty();
    let mut headers = allowed.headers_for(origin(req).as_deref());
    headers.push(("access-control-allow-methods", "GET, POST, OPTIONS".into()));
    headers.push(("access-control-allow-headers", "content-type".into()));
    headers.push(("access-control-max-age", "86400".into()));
    set_all(resp.headers_mut(), headers);
    resp
}

fn set_all(target: &mut Headers, headers: Vec<(&'static str, Cow<'static, str>)>) {
    for (name, value) in headers {
        // `vary` may already name other headers; the others are ours alone.
        let result = if name == "vary" { target.append(name, &value) } else { target.set(name, &value) };
        if let Err(e) = result {
            worker::console_error!("cannot set {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_wildcards() {
        assert_eq!(AllowedOrigins::parse("*"), AllowedOrigins::Any);
        assert_eq!(AllowedOrigins::parse(""), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse("https://a.example, https://b.example/"),
            AllowedOrigins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
    }

    #[test]
    fn echoes_only_listed_origins() {
        let list = AllowedOrigins::parse("https://a.example");
        assert!(
            list.headers_for(Some("https://a.example"))
                .iter()
                .any(|(n, v)| *n == "access-control-allow-origin" && v == "https://a.example")
        );
        assert!(
            !list.headers_for(Some("https://evil.example")).iter().any(|(n, _)| *n == "access-control-allow-origin")
        );
    }
}
