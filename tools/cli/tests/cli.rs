//! The `litmus` binary against the real control plane (a fresh migrated database, served on a
//! loopback port), as a person would run it.

use std::process::Stdio;
use std::time::Duration;

use litmus_control_plane::config::Config;
use litmus_control_plane::{MIGRATOR, startup};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const ADMIN: &str = "admin-secret";

struct Server {
    url: String,
    state: litmus_control_plane::http::AppState,
}

async fn serve(db: PgPool) -> Server {
    let config = Config::for_tests("postgres://unused", ADMIN);
    let state = startup::app_state(db, config, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(startup::serve(listener, state.clone(), std::future::pending()));
    Server { url: format!("http://{addr}"), state }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn litmus(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_litmus"));
    // The token comes from ADMIN_API_TOKENS here, as it does under `make run`.
    cmd.args(args).env("LITMUS_URL", url).env_remove("LITMUS_TOKEN").env("ADMIN_API_TOKENS", format!("{ADMIN},other")).env("USER", "cli.test");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

async fn run(url: &str, args: &[&str]) -> Run {
    run_with_stdin(url, args, None).await
}

async fn run_with_stdin(url: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = litmus(url, args);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn litmus");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("litmus within 20 s").expect("output");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// Runs and expects success.
async fn ok(url: &str, args: &[&str]) -> String {
    let r = run(url, args).await;
    assert_eq!(r.code, 0, "litmus {args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    r.stdout
}

fn experiment_json(key: &str) -> Value {
    json!({"key": key, "name": "Checkout CTA", "description": "Does green sell more?", "owner_team": "growth",
           "variants": [{"key": "blue", "weight": 0.5, "config_json": {"color": "blue"}},
                        {"key": "green", "weight": 0.5, "config_json": {"color": "green"}}],
           "metrics": [{"name": "purchase", "kind": "proportion", "role": "primary"}]})
}

/// 40 units a variant; green converts and spends more. The same on every run.
fn events(key: &str) -> Value {
    let mut out = Vec::new();
    for i in 0..80 {
        let (variant, unit) = (if i % 2 == 0 { "blue" } else { "green" }, format!("u{i}"));
        let head = json!({"experiment": key, "unit_id": unit, "variant_key": variant});
        let with = |extra: Value| {
            let mut e = head.clone();
            for (k, v) in extra.as_object().expect("object") {
                e[k] = v.clone();
            }
            e
        };
        out.push(with(json!({"kind": "exposure", "event_id": format!("{key}-x{i}")})));
        out.push(with(json!({"kind": "metric", "metric": "order_value", "value": 50 + (i * 37) % 40 + if variant == "green" { 10 } else { 0 }, "event_id": format!("{key}-m{i}")})));
        if i % 5 == 0 || (variant == "green" && i % 3 == 0) {
            out.push(with(json!({"kind": "conversion", "metric": "purchase", "event_id": format!("{key}-c{i}")})));
        }
    }
    json!({ "events": out })
}

async fn post(url: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{url}{path}")).bearer_auth(ADMIN).json(&body).send().await.expect("post");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("json")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("litmus-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write temp file");
    path
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn experiments_from_a_file_to_results(db: PgPool) {
    let s = serve(db).await;
    let file = temp_file("checkout.json", &experiment_json("checkout_cta").to_string());
    let created = ok(&s.url, &["experiments", "create", "-f", file.to_str().expect("utf-8 path")]).await;
    let _ = std::fs::remove_file(&file);
    assert!(created.starts_with("created checkout_cta ("), "{created}");
    assert!(created.contains("as a draft"), "{created}");

    // From stdin, and --json gives the server's document.
    let piped = run_with_stdin(&s.url, &["experiments", "create", "-f", "-", "--json"], Some(&experiment_json("other_test").to_string())).await;
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    let doc: Value = serde_json::from_str(&piped.stdout).expect("--json prints JSON");
    assert_eq!((doc["key"].as_str(), doc["status"].as_str()), (Some("other_test"), Some("draft")));

    let launched = ok(&s.url, &["experiments", "launch", "checkout_cta", "--ramp", "100"]).await;
    assert_eq!(launched.trim(), "launched checkout_cta: running at 100 % (version 2)");

    let list = ok(&s.url, &["experiments", "list"]).await;
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("KEY") && lines[0].contains("STATUS") && lines[0].contains("VARIANTS") && lines[0].contains("STARTED"), "{list}");
    assert!(list.lines().any(|l| l.starts_with("checkout_cta") && l.contains("running") && l.contains("100 %") && l.contains("blue,green")), "{list}");
    assert!(list.contains("other_test"), "{list}");
    let running = ok(&s.url, &["experiments", "list", "--status", "running"]).await;
    assert!(running.contains("checkout_cta") && !running.contains("other_test"), "{running}");
    let searched = ok(&s.url, &["experiments", "list", "--q", "other"]).await;
    assert!(searched.contains("other_test") && !searched.contains("checkout_cta"), "{searched}");

    let shown = ok(&s.url, &["experiments", "show", "checkout_cta"]).await;
    assert!(shown.starts_with("checkout_cta — Checkout CTA\nDoes green sell more?"), "{shown}");
    assert!(shown.contains("status     running (version 2)") && shown.contains("{\"color\":\"green\"}") && shown.contains("purchase"), "{shown}");

    let accepted = post(&s.url, "/api/v1/events/batch", events("checkout_cta")).await;
    assert_eq!(accepted["duplicates"], 0, "{accepted}");

    let table = ok(&s.url, &["results", "checkout_cta"]).await;
    assert!(table.contains("exposures: blue 40, green 40"), "{table}");
    assert!(table.contains("SRM: ok (p = 1.0000; observed 40 / 40, expected 50 % / 50 %)"), "{table}");
    assert!(table.contains("purchase (rate, primary)") && table.contains("order_value (mean, secondary)"), "{table}");
    for header in ["VARIANT", "UNITS", "RATE", "MEAN", "LIFT", "95% CI", "P-VALUE", "P(BEST)"] {
        assert!(table.contains(header), "{header}: {table}");
    }
    let green = table.lines().find(|l| l.trim_start().starts_with("green") && l.contains(" pp")).expect("green's purchase row");
    assert!(green.contains('%') && green.contains('['), "{green}");
    assert!(table.lines().any(|l| l.trim_start().starts_with("blue") && l.contains("(control)")), "{table}");

    let csv = ok(&s.url, &["results", "checkout_cta", "--csv"]).await;
    assert!(csv.lines().next().is_some_and(|h| h.contains(',')) && csv.contains("checkout_cta,green"), "{csv}");
    let md = ok(&s.url, &["results", "checkout_cta", "--md"]).await;
    assert!(md.contains("| ") && md.contains("green"), "{md}");
    let doc: Value = serde_json::from_str(&ok(&s.url, &["results", "checkout_cta", "--json"]).await).expect("JSON");
    assert_eq!(doc["variants"][1]["exposures"], 40);

    assert_eq!(ok(&s.url, &["experiments", "pause", "checkout_cta"]).await.trim(), "paused checkout_cta: paused at 100 % (version 3)");
    assert_eq!(ok(&s.url, &["experiments", "stop", "checkout_cta"]).await.trim(), "stopped checkout_cta: stopped at 100 % (version 4)");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn alerts_listed_and_acknowledged(db: PgPool) {
    let s = serve(db).await;
    post(&s.url, "/api/v1/experiments", json!({"key": "watched", "name": "Watched", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
                                            "rules": [{"kind": "max_sample", "units": 2, "action": "pause"}]})).await;
    post(&s.url, "/api/v1/experiments/watched/launch", json!({"ramp_pct": 100})).await;
    post(&s.url, "/api/v1/events/batch", json!({"events": [
        {"kind": "exposure", "experiment": "watched", "unit_id": "u1", "variant_key": "a"},
        {"kind": "exposure", "experiment": "watched", "unit_id": "u2", "variant_key": "b"}]})).await;
    litmus_control_plane::watch::scheduler::once(&startup::watcher(&s.state)).await.expect("the watch job looks");

    let list = ok(&s.url, &["alerts", "--experiment", "watched"]).await;
    assert!(list.starts_with("ID") && list.contains("TITLE"), "{list}");
    let row = list.lines().find(|l| l.contains("watched") && l.contains("rule")).unwrap_or_else(|| panic!("a rule alert: {list}"));
    assert!(row.contains("pause") && row.contains(" no "), "{row}");
    let id = row.split_whitespace().next().expect("id");

    let acked = ok(&s.url, &["alerts", "ack", id]).await;
    // The key's name, then who ran the command.
    assert!(acked.starts_with(&format!("acknowledged alert {id} (rule on watched) by env:admin (cli.test) at ")), "{acked}");
    assert_eq!(ok(&s.url, &["alerts", "--unacknowledged"]).await, "no alerts\n");
    let json: Value = serde_json::from_str(&ok(&s.url, &["alerts", "--kind", "rule", "--json"]).await).expect("JSON");
    assert_eq!(json[0]["acknowledged_by"], "env:admin (cli.test)");

    let bad = run(&s.url, &["alerts", "--kind", "weather"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.starts_with("litmus: 422 validation_failed (field `kind`): one of srm"), "{}", bad.stderr);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn watch_prints_a_snapshot_per_message(db: PgPool) {
    let s = serve(db).await;
    post(&s.url, "/api/v1/experiments", experiment_json("live_cta")).await;
    post(&s.url, "/api/v1/experiments/live_cta/launch", json!({"ramp_pct": 100})).await;

    let mut child = litmus(&s.url, &["watch", "live_cta", "--plain", "--count", "2"]).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut first = String::new();
    // The first snapshot (on connecting) ends with its alerts section.
    while let Some(line) = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("a snapshot within 10 s").expect("read") {
        first.push_str(&line);
        first.push('\n');
        if line.starts_with("alerts") {
            break;
        }
    }
    assert!(first.starts_with("── live_cta · running · updated "), "{first}");
    assert!(first.contains("exposures (0 units)"), "{first}");

    post(&s.url, "/api/v1/events/batch", events("live_cta")).await;
    let mut rest = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("a snapshot within 10 s").expect("read") {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits after 2 results").expect("wait");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("exposures (80 units)"), "{rest}");
    let blue = rest.lines().find(|l| l.trim_start().starts_with("blue ")).expect("blue's exposures");
    assert!(blue.contains("40") && blue.contains('█') && blue.contains("50.00 %"), "{blue}");
    assert!(rest.contains("lifts vs blue") && rest.lines().any(|l| l.contains("purchase") && l.contains("green") && l.contains(" pp")), "{rest}");
    assert!(rest.contains("SRM: ok"), "{rest}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn errors_are_one_readable_line(db: PgPool) {
    let s = serve(db).await;
    let bad = temp_file("bad-weights.json", r#"{"name":"x","variants":[{"key":"a","weight":0.7},{"key":"b","weight":0.7}]}"#);
    let r = run(&s.url, &["experiments", "create", "-f", bad.to_str().expect("utf-8 path")]).await;
    let _ = std::fs::remove_file(&bad);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert_eq!(r.stderr, "litmus: 422 validation_failed (field `variants`): weights must sum to 1 (they sum to 1.4)\n");

    let r = run(&s.url, &["experiments", "show", "ghost"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("litmus: 404 not_found") && r.stderr.lines().count() == 1, "{}", r.stderr);

    let r = run(&s.url, &["experiments", "create", "-f", "/nonexistent/x.json"]).await;
    assert!(r.code == 1 && r.stderr.starts_with("litmus: reading /nonexistent/x.json: "), "{}", r.stderr);
    let r = run_with_stdin(&s.url, &["experiments", "create", "-f", "-"], Some("{not json")).await;
    assert!(r.code == 1 && r.stderr.starts_with("litmus: stdin is not JSON: "), "{}", r.stderr);

    let r = run(&s.url, &["watch", "ghost", "--plain"]).await;
    assert!(r.code == 1 && r.stderr.starts_with("litmus: 404 not_found"), "{}", r.stderr);

    let mut wrong = litmus(&s.url, &["experiments", "list"]);
    wrong.env("LITMUS_TOKEN", "nope");
    let out = wrong.output().await.expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.starts_with("litmus: 401 unauthorized") && stderr.contains("--token"), "{stderr}");

    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let r = run(&dead, &["experiments", "list"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, format!("litmus: cannot reach the control plane at {dead}: connection refused (is it running? set --url or LITMUS_URL)\n"));
    let r = run(&dead, &["watch", "x", "--plain"]).await;
    assert!(r.code == 1 && r.stderr.contains("connection refused"), "{}", r.stderr);

    let r = run(&s.url, &["results"]).await;
    assert_eq!(r.code, 2, "a usage error: {}", r.stderr);
    let r = run("not a url", &["experiments", "list"]).await;
    assert!(r.code == 1 && r.stderr.starts_with("litmus: --url `not a url` is not a URL"), "{}", r.stderr);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn loadgen_runs_as_a_subcommand(db: PgPool) {
    let s = serve(db).await;
    post(&s.url, "/api/v1/experiments", experiment_json("load")).await;
    post(&s.url, "/api/v1/experiments/load/launch", json!({"ramp_pct": 100})).await;
    // Variants fetched from the control plane with the CLI's own --url and token.
    let report = ok(&s.url, &["loadgen", "--experiment", "load", "--events", "300", "--batch", "100", "--concurrency", "2", "--units", "50", "--quiet"]).await;
    assert!(report.contains("accepted     300   duplicates 0") && report.contains("errors       none"), "{report}");
    let table = ok(&s.url, &["results", "load"]).await;
    assert!(table.contains("exposures: blue 25, green 25"), "{table}");

    let r = run("http://192.0.2.1:8000", &["loadgen", "--experiment", "load"]).await;
    assert!(r.code == 1 && r.stderr.starts_with("litmus: loadgen only targets loopback addresses"), "{}", r.stderr);
}
