//! The load generator as a library: `loadgen` (this crate's binary) and `litmus loadgen` (the
//! CLI in tools/cli) parse the same [`Options`] and call [`run`], so the two cannot drift.
//! Sends N events at concurrency C, in batches of B, to the control plane's batch endpoint or the
//! edge worker's `/v1/events`, and prints events/s, batch latency percentiles and errors.
//! Loopback only, bounded in count and time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Target {
    /// POST {url}/api/v1/events/batch with a bearer token.
    ControlPlane,
    /// POST {url}/v1/events (the edge worker's public endpoint).
    Edge,
}

// Everything but where to send and with which token: the `litmus` CLI has its own `--url` and
// `--token` for every command, so those stay with each binary. (A `//` comment: clap would take a
// doc comment here for the about text of `litmus loadgen`.)
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    #[arg(long, value_enum, default_value = "control-plane")]
    pub target: Target,
    /// Experiment key the events belong to.
    #[arg(long)]
    pub experiment: String,
    /// Comma-separated variant keys; fetched from the control plane when omitted.
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// Total events to send (at most 50 million).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Stop after this many seconds even if not all events were sent.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Distinct units the events are spread over.
    #[arg(long, default_value_t = 100_000)]
    pub units: u64,
    /// Append the event_id of every event answered 202 to this file (for loss checks).
    #[arg(long)]
    pub acked_file: Option<std::path::PathBuf>,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

struct Stats {
    latency_us: Histogram<u64>,
    errors: std::collections::BTreeMap<String, u64>,
    accepted: u64,
    duplicates: u64,
}

/// Sends the events and prints the report to stdout. `url` is the base URL (loopback only);
/// `token` may be empty (the edge's public endpoint needs none).
pub async fn run(url: &str, token: &str, args: &Options) -> anyhow::Result<()> {
    let base = url.trim_end_matches('/');
    let url = url::Url::parse(base).context("--url")?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !loopback {
        bail!("loadgen only targets loopback addresses (got {base})");
    }
    if args.events > 50_000_000 || args.batch == 0 || args.batch > 10_000 || args.concurrency == 0 || args.concurrency > 256 {
        bail!("bounds: events ≤ 50M, 1 ≤ batch ≤ 10000, 1 ≤ concurrency ≤ 256");
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(args.concurrency).build()?;
    // The edge counts an event only with the signature of the answer it reports on: its units are
    // assigned there first, and each event echoes its unit's answer.
    let signed = match args.target {
        Target::Edge => Some(Arc::new(assign_at_edge(&client, base, args).await?)),
        Target::ControlPlane => None,
    };
    let variants = match (&signed, args.variants.is_empty()) {
        (Some(_), _) => Vec::new(),
        (None, true) => fetch_variants(&client, base, token, args).await?,
        (None, false) => args.variants.clone(),
    };
    let endpoint = match args.target {
        Target::ControlPlane => format!("{base}/api/v1/events/batch"),
        Target::Edge => format!("{base}/v1/events"),
    };

    let batches = args.events.div_ceil(args.batch);
    let next = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(Stats {
        latency_us: Histogram::new(3).context("histogram")?,
        errors: Default::default(),
        accepted: 0,
        duplicates: 0,
    }));
    let acked = match &args.acked_file {
        Some(p) => Some(Arc::new(Mutex::new(BufWriter::new(File::create(p).with_context(|| format!("{}", p.display()))?)))),
        None => None,
    };
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(args.events) };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let start = Instant::now();

    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, stats, acked, bar) = (client.clone(), next.clone(), stats.clone(), acked.clone(), bar.clone());
        let (endpoint, token, experiment, variants, signed) = (endpoint.clone(), token.to_owned(), args.experiment.clone(), variants.clone(), signed.clone());
        let (batch, total, units) = (args.batch, args.events, args.units);
        workers.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches || Instant::now() >= deadline {
                    return;
                }
                let first = b * batch;
                let n = batch.min(total - first);
                // UUIDv7, as the edge mints them: unique across runs, and time-ordered.
                let ids: Vec<String> = (first..first + n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
                let mut body = String::with_capacity(n as usize * 160);
                body.push_str(r#"{"events":["#);
                for (k, (i, id)) in (first..first + n).zip(&ids).enumerate() {
                    if k > 0 {
                        body.push(',');
                    }
                    match &signed {
                        Some(pool) => signed_event(&mut body, i, id, &experiment, pool),
                        None => event(&mut body, i, id, &experiment, &variants, units),
                    }
                }
                body.push_str("]}");
                let sent = Instant::now();
                let mut req = client.post(&endpoint).header("content-type", "application/json").body(body);
                if !token.is_empty() {
                    req = req.bearer_auth(&token);
                }
                let result = req.send().await;
                let elapsed = sent.elapsed();
                let mut s = stats.lock().await;
                let _ = s.latency_us.record(elapsed.as_micros() as u64);
                match result {
                    Ok(resp) if resp.status().as_u16() == 202 => {
                        let v: Value = resp.json().await.unwrap_or_default();
                        s.accepted += v["accepted"].as_u64().unwrap_or(n);
                        s.duplicates += v["duplicates"].as_u64().unwrap_or(0);
                        drop(s);
                        if let Some(file) = &acked {
                            let mut f = file.lock().await;
                            for id in &ids {
                                let _ = writeln!(f, "{id}");
                            }
                        }
                    }
                    Ok(resp) => *s.errors.entry(format!("HTTP {}", resp.status().as_u16())).or_default() += n,
                    Err(e) => *s.errors.entry(if e.is_timeout() { "timeout".into() } else if e.is_connect() { "connect".into() } else { "transport".into() }).or_default() += n,
                }
                bar.inc(n);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    bar.finish_and_clear();
    if let Some(file) = &acked {
        file.lock().await.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let s = stats.lock().await;
    let failed: u64 = s.errors.values().sum();
    let ms = |q: f64| s.latency_us.value_at_quantile(q) as f64 / 1000.0;
    println!("target       {endpoint}");
    println!("sent         {} events in {} requests of {} (concurrency {})", s.accepted + s.duplicates + failed, s.latency_us.len(), args.batch, args.concurrency);
    println!("duration     {secs:.2} s");
    println!("throughput   {:.0} events/s accepted", s.accepted as f64 / secs);
    println!("accepted     {}   duplicates {}", s.accepted, s.duplicates);
    println!("latency      p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms (per request)", ms(0.5), ms(0.9), ms(0.99), s.latency_us.max() as f64 / 1000.0);
    if s.errors.is_empty() {
        println!("errors       none");
    } else {
        let list: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}: {v} events")).collect();
        println!("errors       {}", list.join(", "));
    }
    Ok(())
}

/// Event `i` as JSON text: an exposure for a unit's first event, then metrics and conversions,
/// spread over `units` units with a fixed variant per unit. Written directly (not through
/// `serde_json::Value`) because the generator shares the CPU with what it measures; ids and keys
/// are plain ASCII, so no escaping is needed.
fn event(out: &mut String, i: u64, id: &str, experiment: &str, variants: &[String], units: u64) {
    use std::fmt::Write as _;
    let unit = i % units;
    let variant = &variants[(unit % variants.len() as u64) as usize];
    let head = format_args!(r#""experiment":"{experiment}","unit_id":"lg-{unit}","variant_key":"{variant}","event_id":"{id}""#);
    let _ = match (i / units, i % 10) {
        (0, _) => write!(out, r#"{{"kind":"exposure",{head}}}"#),
        (_, 0) => write!(out, r#"{{"kind":"conversion",{head},"metric":"purchase"}}"#),
        _ => write!(out, r#"{{"kind":"metric",{head},"metric":"order_value","value":{}}}"#, ((i * 7919) % 20_000) as f64 / 100.0),
    };
}

/// A unit assigned at the edge: its id, its variant and the answer's signature.
struct Signed {
    unit: String,
    variant: String,
    signature: String,
}

/// The units of `--units` (at most 20 000 with `--target edge`) assigned through the edge's
/// `POST /v1/assign` (`expose=false`), keeping those in the experiment.
async fn assign_at_edge(client: &reqwest::Client, base: &str, args: &Options) -> anyhow::Result<Vec<Signed>> {
    if args.units > 20_000 {
        bail!("--units is at most 20000 with --target edge (each unit is assigned at the edge first)");
    }
    let url = format!("{base}/v1/assign");
    let mut out = Vec::new();
    let units: Vec<u64> = (0..args.units).collect();
    for chunk in units.chunks(args.concurrency.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for &u in chunk {
            let body = serde_json::json!({"unit_id": format!("lg-{u}"), "experiments": [args.experiment], "expose": false});
            let req = client.post(&url).json(&body);
            set.spawn(async move { (u, async { req.send().await?.error_for_status()?.json::<Value>().await }.await) });
        }
        let mut answers = set.join_all().await;
        answers.sort_by_key(|(u, _)| *u);
        for (u, answer) in answers {
            let answer = answer.with_context(|| format!("assigning lg-{u} at the edge"))?;
            let a = &answer["assignments"][0];
            if let (Some(true), Some(variant), Some(signature)) = (a["in_experiment"].as_bool(), a["variant_key"].as_str(), a["signature"].as_str()) {
                out.push(Signed { unit: format!("lg-{u}"), variant: variant.to_owned(), signature: signature.to_owned() });
            }
        }
    }
    if out.is_empty() {
        bail!("no unit is in experiment {} at the edge (is it running, and does the edge hold SIGNING_KEYS?)", args.experiment);
    }
    Ok(out)
}

/// [`event`] for a unit assigned at the edge, echoing its answer's signature.
fn signed_event(out: &mut String, i: u64, id: &str, experiment: &str, pool: &[Signed]) {
    use std::fmt::Write as _;
    let s = &pool[(i % pool.len() as u64) as usize];
    let head = format_args!(
        r#""experiment":"{experiment}","unit_id":"{}","variant_key":"{}","event_id":"{id}","signature":"{}""#,
        s.unit, s.variant, s.signature
    );
    let _ = match (i / pool.len() as u64, i % 10) {
        (0, _) => write!(out, r#"{{"kind":"exposure",{head}}}"#),
        (_, 0) => write!(out, r#"{{"kind":"conversion",{head},"metric":"purchase"}}"#),
        _ => write!(out, r#"{{"kind":"metric",{head},"metric":"order_value","value":{}}}"#, ((i * 7919) % 20_000) as f64 / 100.0),
    };
}

async fn fetch_variants(client: &reqwest::Client, base: &str, token: &str, args: &Options) -> anyhow::Result<Vec<String>> {
    let url = format!("{base}/api/v1/experiments/{}", args.experiment);
    let v: Value = client.get(&url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
    let keys: Vec<String> = v["variants"].as_array().into_iter().flatten().filter_map(|x| x["key"].as_str().map(str::to_owned)).collect();
    if keys.is_empty() {
        bail!("experiment {} has no variants", args.experiment);
    }
    Ok(keys)
}
