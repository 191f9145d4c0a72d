//! Live results over the WebSocket (a real socket on loopback) and the cumulative timeseries.

mod common;

use std::time::Duration;

use common::{ADMIN, App, READER};
use futures_util::{SinkExt, StreamExt};
use litmus_control_plane::config::Config;
use litmus_control_plane::{MIGRATOR, startup};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;

async fn next_json<S>(ws: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s").expect("open").expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

/// The app on a loopback socket (a read token too), and a watch job over the same state.
async fn serve(db: &PgPool) -> (std::net::SocketAddr, litmus_control_plane::watch::scheduler::Watch) {
    serve_with(db, |_| {}).await
}

async fn serve_with(db: &PgPool, adjust: impl FnOnce(&mut Config)) -> (std::net::SocketAddr, litmus_control_plane::watch::scheduler::Watch) {
    let mut config = Config::for_tests("postgres://unused", ADMIN);
    config.read_api_tokens = vec![READER.to_owned().into()];
    adjust(&mut config);
    let state = startup::app_state(db.clone(), config, None);
    let watch = startup::watcher(&state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(startup::serve(listener, state, std::future::pending()));
    (addr, watch)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn websocket_pushes_results_as_events_arrive(db: PgPool) {
    let (addr, _) = serve(&db).await;
    let base = format!("http://{addr}/api/v1");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(ADMIN).json(&body).send();
    post("/experiments", json!({"key": "live", "name": "Live", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]})).await.expect("create");
    post("/experiments/live/launch", json!({"ramp_pct": 100})).await.expect("launch");

    // A browser authenticates with its first message (a read token is enough).
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/experiments/live/live")).await.expect("connect");
    ws.send(Message::Text(json!({"type": "auth", "token": READER}).to_string().into())).await.expect("send");
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "results");
    assert_eq!(first["data"]["variants"][0]["exposures"], 0);

    let r = post("/events/exposure", json!({"experiment": "live", "unit_id": "u1", "variant_key": "b"})).await.expect("event");
    assert_eq!(r.status(), 202);
    let pushed = next_json(&mut ws).await;
    assert_eq!(pushed["type"], "results");
    assert_eq!(pushed["data"]["variants"][1]["exposures"], 1, "{pushed}");

    // A bandit's socket also carries its bandit readout, after the results.
    post("/experiments", json!({"key": "arms", "name": "Arms", "type": "bandit", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]})).await.expect("create");
    post("/experiments/arms/launch", json!({"ramp_pct": 100})).await.expect("launch");
    let (mut arms, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/experiments/arms/live")).await.expect("connect");
    arms.send(Message::Text(json!({"type": "auth", "token": READER}).to_string().into())).await.expect("send");
    assert_eq!(next_json(&mut arms).await["type"], "results");
    let readout = next_json(&mut arms).await;
    assert_eq!((readout["type"].as_str(), readout["data"]["experiment"].as_str()), (Some("bandit"), Some("arms")), "{readout}");
    assert_eq!(readout["data"]["variants"][1]["weight"], 0.5);
    post("/events/exposure", json!({"experiment": "arms", "unit_id": "u1", "variant_key": "b"})).await.expect("event");
    assert_eq!(next_json(&mut arms).await["data"]["variants"][1]["exposures"], 1);
    let pushed = next_json(&mut arms).await;
    assert_eq!((pushed["type"].as_str(), pushed["data"]["variants"][1]["exposures"].as_i64()), (Some("bandit"), Some(1)), "{pushed}");

    // Bad token: an error message, then the socket closes.
    let (mut bad, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/experiments/live/live")).await.expect("connect");
    bad.send(Message::Text(json!({"type": "auth", "token": "nope"}).to_string().into())).await.expect("send");
    let err = next_json(&mut bad).await;
    assert_eq!((err["type"].as_str(), err["status"].as_u64(), err["error"]["code"].as_str()), (Some("error"), Some(401), Some("unauthorized")));

    // Unknown experiment: 404 over the socket.
    let (mut missing, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/experiments/ghost/live")).await.expect("connect");
    missing.send(Message::Text(json!({"type": "auth", "token": ADMIN}).to_string().into())).await.expect("send");
    assert_eq!(next_json(&mut missing).await["status"], 404);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sockets_are_capped_per_key_and_take_no_big_message_before_auth(db: PgPool) {
    let (addr, _) = serve_with(&db, |c| c.live_sockets_per_key = 2).await;
    let http = reqwest::Client::new();
    http.post(format!("http://{addr}/api/v1/experiments")).bearer_auth(ADMIN)
        .json(&json!({"key": "capped", "name": "Capped", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]}))
        .send().await.expect("create");
    let url = format!("ws://{addr}/api/v1/ws/experiments/capped/live");
    let open = || async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
        ws.send(Message::Text(json!({"type": "auth", "token": READER}).to_string().into())).await.expect("send");
        let first = next_json(&mut ws).await;
        (ws, first)
    };
    let (mut one, first) = open().await;
    assert_eq!(first["type"], "results");
    let (_two, second) = open().await;
    assert_eq!(second["type"], "results");
    let (_, third) = open().await;
    assert_eq!((third["status"].as_u64(), third["error"]["code"].as_str()), (Some(429), Some("too_many_requests")), "{third}");
    // Closing one frees its place.
    one.close(None).await.expect("close");
    drop(one);
    let mut freed = None;
    for _ in 0..50 {
        let (_ws, answer) = open().await;
        if answer["type"] == "results" {
            freed = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed.is_some(), "a closed socket's place is given back");
    // A message over 8 KiB is not read, even a valid auth message padded out: refused.
    let (mut big, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
    let padded = json!({"type": "auth", "token": ADMIN, "pad": "x".repeat(64 * 1024)}).to_string();
    let _ = big.send(Message::Text(padded.into())).await;
    let next = tokio::time::timeout(Duration::from_secs(10), big.next()).await.expect("an answer within 10 s");
    match next {
        Some(Ok(Message::Text(t))) => assert!(t.contains("\"status\":401"), "{t}"),
        other => assert!(!matches!(other, Some(Ok(Message::Text(_)))), "{other:?}"),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn timeseries_is_cumulative(db: PgPool) {
    let app = App::new(db);
    app.create(json!({"key": "ts", "targeting": {}})).await;
    app.post("/api/v1/experiments/ts/launch", json!({"ramp_pct": 100})).await;
    let ev = |kind: &str, unit: &str, v: &str, minute: u32, value: Option<f64>| {
        let mut e = json!({"kind": kind, "experiment": "ts", "unit_id": unit, "variant_key": v, "ts": format!("2026-05-01T12:{minute:02}:30Z")});
        if kind == "metric" { e["metric"] = json!("rev"); e["value"] = json!(value); }
        if kind == "conversion" { e["metric"] = json!("buy"); }
        e
    };
    let events = json!({"events": [
        ev("exposure", "u1", "model_a", 0, None), ev("metric", "u1", "model_a", 0, Some(10.0)),
        ev("exposure", "u2", "model_b", 1, None), ev("metric", "u2", "model_b", 2, Some(4.0)),
        ev("metric", "u1", "model_a", 2, Some(20.0)), ev("conversion", "u2", "model_b", 2, None),
        ev("exposure", "u3", "model_a", 2, None), ev("metric", "u3", "model_a", 2, Some(6.0)),
    ]});
    assert_eq!(app.post("/api/v1/events/batch", events).await.json()["accepted"], 8);
    let ts = app.get("/api/v1/experiments/ts/timeseries?interval=minute").await.json();
    let points = ts["points"].as_array().expect("points");
    assert_eq!(points.len(), 3);
    assert_eq!(points[0]["t"], "2026-05-01T12:00:00Z");
    let a = |i: usize| &points[i]["variants"]["model_a"];
    let b = |i: usize| &points[i]["variants"]["model_b"];
    assert_eq!((a(0)["exposures"].as_i64(), a(0)["metrics"]["rev"]["mean"].as_f64()), (Some(1), Some(10.0)));
    assert_eq!((b(1)["exposures"].as_i64(), a(1)["metrics"]["rev"]["mean"].as_f64()), (Some(1), Some(10.0)));
    // minute 2: u1 has 30, u3 has 6 → mean 18 over 2 units; model_b u2: 4; buy rate 1/1
    assert_eq!((a(2)["exposures"].as_i64(), a(2)["metrics"]["rev"]["units"].as_i64(), a(2)["metrics"]["rev"]["mean"].as_f64()), (Some(2), Some(2), Some(18.0)));
    assert_eq!((b(2)["metrics"]["rev"]["mean"].as_f64(), b(2)["conversions"]["buy"]["rate"].as_f64()), (Some(4.0), Some(1.0)));
    let hourly = app.get("/api/v1/experiments/ts/timeseries?interval=hour").await.json();
    assert_eq!(hourly["points"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.get("/api/v1/experiments/ts/timeseries?interval=week").await.error(422).1.as_deref(), Some("interval"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn websocket_pushes_the_alerts_the_watch_job_raises(db: PgPool) {
    let (addr, watch) = serve(&db).await;
    let base = format!("http://{addr}/api/v1");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(ADMIN).json(&body).send();
    post("/experiments", json!({"key": "watched", "name": "Watched", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
                                "rules": [{"kind": "max_sample", "units": 2, "action": "pause"}]})).await.expect("create");
    post("/experiments/watched/launch", json!({"ramp_pct": 100})).await.expect("launch");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/experiments/watched/live")).await.expect("connect");
    ws.send(Message::Text(json!({"type": "auth", "token": READER}).to_string().into())).await.expect("send");
    assert_eq!(next_json(&mut ws).await["type"], "results");
    for unit in ["u1", "u2"] {
        post("/events/exposure", json!({"experiment": "watched", "unit_id": unit, "variant_key": "a"})).await.expect("event");
    }
    litmus_control_plane::watch::scheduler::once(&watch).await.expect("look");
    let alert = loop {
        let m = next_json(&mut ws).await;
        if m["type"] == "alert" {
            break m;
        }
    };
    assert_eq!((alert["data"]["kind"].clone(), alert["data"]["action"].clone()), (json!("rule"), json!("pause")), "{alert}");
}
