//! Targeting through the API: GrowthBook conditions pasted verbatim, saved groups, refusals.

mod common;

use axum::http::{Method, StatusCode};
use common::App;
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn put(app: &App, path: &str, body: Value) -> common::Reply {
    app.raw(Method::PUT, path, Some(common::ADMIN), Some(body.to_string())).await
}

async fn assign(app: &App, unit: &str, attributes: Value) -> Value {
    let r = app.post("/api/v1/assign", json!({"experiment": "model_ranking", "unit_id": unit, "attributes": attributes})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_growthbook_condition_pasted_verbatim_is_stored_and_evaluated(db: PgPool) {
    let app = App::new(db);
    // As GrowthBook's console writes it: `$`-operators, versions, an array attribute, a group.
    let condition = json!({"$and": [
        {"country": {"$in": ["US", "CA"]}},
        {"app_version": {"$vgte": "2.10.0"}},
        {"$or": [{"tags": {"$elemMatch": {"$eq": "beta"}}}, {"id": {"$inGroup": "staff"}}]},
        {"$nor": [{"plan": "free"}]}
    ]});
    let created = app.create(json!({"targeting": condition})).await;
    assert_eq!(created["targeting"], condition, "stored as written");
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;
    let base = json!({"country": "US", "app_version": "2.10.1", "tags": ["beta"], "plan": "pro"});
    assert_eq!(assign(&app, "u1", base.clone()).await["reason"], "assigned");
    let with = |k: &str, v: Value| { let mut a = base.clone(); a[k] = v; a };
    assert_eq!(assign(&app, "u1", with("app_version", json!("2.9.9"))).await["reason"], "targeting", "2.9.9 < 2.10.0 as versions");
    assert_eq!(assign(&app, "u1", with("plan", json!("free"))).await["reason"], "targeting");
    assert_eq!(assign(&app, "u1", with("tags", json!(["alpha"]))).await["reason"], "targeting");

    // The group: unknown is empty (as in GrowthBook); once saved, its members are in.
    let staff = with("tags", json!([])).as_object().cloned().map(|mut m| { m.insert("id".into(), json!("emp-7")); Value::Object(m) }).expect("object");
    assert_eq!(assign(&app, "u1", staff.clone()).await["reason"], "targeting");
    let r = put(&app, "/api/v1/saved-groups/staff", json!({"values": ["emp-7", "emp-9"], "description": "employees"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(assign(&app, "u1", staff.clone()).await["reason"], "assigned");
    assert_eq!(put(&app, "/api/v1/saved-groups/staff", json!({"values": ["emp-9"]})).await.status, StatusCode::OK);
    assert_eq!(assign(&app, "u1", staff).await["reason"], "targeting");

    // The edge's config set carries the groups.
    let edge = app.get("/api/v1/edge/config").await.json();
    assert_eq!(edge["config"]["saved_groups"], json!({"staff": ["emp-9"]}));
    let listed = app.get("/api/v1/saved-groups").await.json();
    assert_eq!(listed[0]["id"], "staff");
    assert_eq!(app.get("/api/v1/saved-groups/staff").await.json()["values"], json!(["emp-9"]));
    assert_eq!(app.delete("/api/v1/saved-groups/staff").await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/saved-groups/staff").await.error(404).0, "not_found");
    assert_eq!(app.delete("/api/v1/saved-groups/staff").await.error(404).0, "not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn meaningless_conditions_and_groups_are_refused_with_the_path(db: PgPool) {
    let app = App::new(db);
    let refused = |targeting: Value| {
        let app = &app;
        async move {
            let mut body = json!({"key": "x", "name": "x", "variants": [{"key": "a", "weight": 1.0}]});
            body["targeting"] = targeting;
            app.post("/api/v1/experiments", body).await.error(422).1
        }
    };
    assert_eq!(refused(json!({"country": {"$in": "US"}})).await.as_deref(), Some("targeting.country.$in"));
    assert_eq!(refused(json!({"$and": [{"country": {"$in": "US"}}]})).await.as_deref(), Some("targeting.$and[0].country.$in"));
    assert_eq!(refused(json!({"$or": [{"a": 1}, {"b": {"$regex": "(("}}]})).await.as_deref(), Some("targeting.$or[1].b.$regex"));
    assert_eq!(refused(json!({"a": {"$inn": [1]}})).await.as_deref(), Some("targeting.a.$inn"));
    assert_eq!(refused(json!({"a": {"$in": [1]}, "or": []})).await.as_deref(), Some("targeting.or"), "dialects mixed");
    assert_eq!(refused(json!({"a": {"inn": [1]}})).await.as_deref(), Some("targeting.a.inn"));

    assert_eq!(put(&app, "/api/v1/saved-groups/bad%20id", json!({"values": []})).await.error(422).1.as_deref(), Some("id"));
    assert_eq!(put(&app, "/api/v1/saved-groups/g", json!({"values": [1, {"a": 1}]})).await.error(422).1.as_deref(), Some("values[1]"));
    assert_eq!(put(&app, "/api/v1/saved-groups/g", json!({"values": "a"})).await.status.as_u16(), 422);
    assert_eq!(put(&app, "/api/v1/saved-groups/g", json!({"values": [], "extra": 1})).await.status.as_u16(), 422);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_array_equality_bug_is_fixed_in_our_dialect(db: PgPool) {
    let app = App::new(db);
    app.create(json!({"targeting": {"tags": ["a", "b"]}})).await;
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;
    assert_eq!(assign(&app, "u1", json!({"tags": ["a", "b"]})).await["reason"], "assigned");
    assert_eq!(assign(&app, "u1", json!({"tags": ["b", "a"]})).await["reason"], "targeting");
}
