//! `litmus`: Litmus Edge's control plane from a terminal.
//!
//!     litmus experiments list --status running
//!     litmus experiments create -f experiment.json
//!     litmus experiments launch checkout_cta --ramp 50
//!     litmus results checkout_cta
//!     litmus watch checkout_cta
//!
//! Every failure is one line on stderr and exit status 1; tools/cli/README.md shows each command.

mod api;
mod render;
mod watch;

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use api::{Client, seg};

#[derive(Debug, Parser)]
#[command(name = "litmus", version, about = "Litmus Edge from the terminal: experiments, results, alerts, a live dashboard, load generation.")]
struct Cli {
    /// The control plane's base URL.
    #[arg(long, global = true, env = "LITMUS_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// API token; without one, the first of ADMIN_API_TOKENS (what `make run` uses).
    #[arg(long, global = true, env = "LITMUS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, show, create and steer experiments.
    #[command(subcommand)]
    Experiments(Experiments),
    /// An experiment's readout: per metric, each variant's value, lift, 95% CI, p-value, P(best).
    Results {
        /// Experiment id or key.
        experiment: String,
        /// The server's CSV export.
        #[arg(long, conflicts_with_all = ["md", "json"])]
        csv: bool,
        /// The server's Markdown export.
        #[arg(long, conflicts_with = "json")]
        md: bool,
    },
    /// The alert feed, newest first; `alerts ack <id>` acknowledges one.
    Alerts {
        #[command(subcommand)]
        action: Option<AlertAction>,
        #[command(flatten)]
        filter: AlertFilter,
    },
    /// A live dashboard of one experiment (plain snapshots when stdout is not a terminal).
    Watch {
        /// Experiment id or key.
        experiment: String,
        /// One plain-text snapshot per message instead of the dashboard.
        #[arg(long, alias = "once")]
        plain: bool,
        /// Exit after this many results messages.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Send a bounded number of events on loopback and report throughput and latency (the
    /// `loadgen` tool; --url and --token as for every command, LOADGEN_TOKEN also read).
    Loadgen(litmus_loadgen::Options),
}

#[derive(Debug, Subcommand)]
enum Experiments {
    /// A table of experiments, newest first.
    List {
        /// Only these statuses (comma-separated: draft, running, paused, stopped).
        #[arg(long)]
        status: Option<String>,
        /// Only experiments whose key or name contains this text.
        #[arg(long)]
        q: Option<String>,
    },
    /// One experiment's settings, variants, metrics, rules and rollout.
    Show { experiment: String },
    /// Create an experiment from a JSON file (as `POST /api/v1/experiments` takes it).
    Create {
        /// The JSON file, or `-` for stdin.
        #[arg(short = 'f', long = "file")]
        file: String,
    },
    /// Launch (draft or paused → running), or change the ramp of a running experiment.
    Launch {
        experiment: String,
        /// Share of units in the experiment, 0 to 100; the current ramp when omitted.
        #[arg(long)]
        ramp: Option<f64>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Pause a running experiment.
    Pause {
        experiment: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Stop an experiment for good.
    Stop {
        experiment: String,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Debug, Args)]
struct Actor {
    /// Who does it, for the audit trail (default: $USER).
    #[arg(long)]
    actor: Option<String>,
}

impl Actor {
    fn name(&self) -> Option<String> {
        self.actor.clone().or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
    }
}

#[derive(Debug, Subcommand)]
enum AlertAction {
    /// Acknowledge an alert.
    Ack {
        id: u64,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Debug, Args)]
struct AlertFilter {
    /// Only this experiment's alerts (id or key).
    #[arg(long)]
    experiment: Option<String>,
    /// Only this kind: srm, guardrail, rule, rollout, anomaly, ready_to_call, underpowered.
    #[arg(long)]
    kind: Option<String>,
    /// Only alerts nobody acknowledged yet.
    #[arg(long)]
    unacknowledged: bool,
    /// At most this many (the server's default: 100).
    #[arg(long)]
    limit: Option<u32>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("litmus: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` puts the whole chain on one line: "reading x.json: No such file…".
            eprintln!("litmus: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token(cli: &Cli) -> String {
    cli.token.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| {
        std::env::var("ADMIN_API_TOKENS").ok().and_then(|v| v.split(',').map(str::trim).find(|t| !t.is_empty()).map(str::to_owned)).unwrap_or_default()
    })
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    out(&format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// Writes to stdout; a reader that went away (`litmus experiments list | head -1`) is not an
/// error, where `print!` would panic.
pub fn out(text: &str) -> anyhow::Result<()> {
    written(text).map(|_| ())
}

/// As [`out`]; false once the reader went away (`litmus watch x | head` then stops).
pub fn written(text: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        other => other.map(|()| true).map_err(Into::into),
    }
}

/// An id or key for a path: an empty one would name the collection instead.
fn ident(s: &str) -> anyhow::Result<String> {
    if s.trim().is_empty() {
        anyhow::bail!("an experiment id or key is needed (got an empty one)");
    }
    Ok(seg(s))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let token = token(&cli);
    if let Command::Loadgen(opts) = &cli.command {
        let token = if token.is_empty() { std::env::var("LOADGEN_TOKEN").unwrap_or_default() } else { token };
        return litmus_loadgen::run(&cli.url, &token, opts).await;
    }
    let client = Client::new(&cli.url, &token)?;
    match cli.command {
        Command::Experiments(cmd) => experiments(&client, cmd, cli.json).await,
        Command::Results { experiment, csv, md } => {
            let path = format!("/api/v1/experiments/{}/results", ident(&experiment)?);
            if csv || md {
                return out(&client.get_text(&path, &[("format", if csv { "csv" } else { "md" }.into())]).await?);
            }
            let doc = client.get(&path, &[]).await?;
            if cli.json { print_json(&doc) } else { out(&render::results(&doc)) }
        }
        Command::Alerts { action: Some(AlertAction::Ack { id, actor }), .. } => {
            let body = actor.name().map_or(json!({}), |a| json!({"actor": a}));
            let alert = client.post(&format!("/api/v1/alerts/{id}/acknowledge"), &body).await?;
            if cli.json {
                print_json(&alert)
            } else {
                out(&format!("acknowledged alert {} ({} on {}) by {} at {}\n", id, render::s(&alert["kind"]), render::s(&alert["experiment_key"]), render::s(&alert["acknowledged_by"]), render::time(&alert["acknowledged_at"])))
            }
        }
        Command::Alerts { action: None, filter } => {
            let mut query = Vec::new();
            if let Some(e) = filter.experiment {
                query.push(("experiment", e));
            }
            if let Some(k) = filter.kind {
                query.push(("kind", k));
            }
            if filter.unacknowledged {
                query.push(("acknowledged", "false".into()));
            }
            if let Some(l) = filter.limit {
                query.push(("limit", l.to_string()));
            }
            let list = client.get("/api/v1/alerts", &query).await?;
            if cli.json { print_json(&list) } else { out(&render::alerts(list.as_array().map_or(&[], Vec::as_slice))) }
        }
        Command::Watch { experiment, plain, count } => {
            ident(&experiment)?;
            watch::run(&client, watch::Options { experiment, plain, count }).await
        }
        Command::Loadgen(_) => unreachable!("handled above"),
    }
}

async fn experiments(client: &Client, cmd: Experiments, json_out: bool) -> anyhow::Result<()> {
    let show = |e: &Value| if json_out { print_json(e) } else { out(&render::experiment(e)) };
    let transition = |e: &Value, verb: &str| {
        if json_out {
            print_json(e)
        } else {
            out(&format!("{verb} {}: {} at {} (version {})\n", render::s(&e["key"]), render::s(&e["status"]), e["ramp_pct"].as_f64().map_or("-".into(), |r| format!("{r} %")), render::s(&e["version"])))
        }
    };
    match cmd {
        Experiments::List { status, q } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(q) = q {
                query.push(("q", q));
            }
            let list = client.get("/api/v1/experiments", &query).await?;
            if json_out { print_json(&list) } else { out(&render::experiments(list.as_array().map_or(&[], Vec::as_slice))) }
        }
        Experiments::Show { experiment } => show(&client.get(&format!("/api/v1/experiments/{}", ident(&experiment)?), &[]).await?),
        Experiments::Create { file } => {
            let (text, name) = if file == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
                (s, "stdin".to_owned())
            } else {
                (std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?, file)
            };
            let body: Value = serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))?;
            let e = client.post("/api/v1/experiments", &body).await?;
            if json_out {
                return print_json(&e);
            }
            out(&format!("created {} ({}) as a {}\n\n", render::s(&e["key"]), render::s(&e["id"]), render::s(&e["status"])))?;
            show(&e)
        }
        Experiments::Launch { experiment, ramp, actor } => {
            let mut body = json!({});
            if let Some(r) = ramp {
                body["ramp_pct"] = json!(r);
            }
            if let Some(a) = actor.name() {
                body["actor"] = json!(a);
            }
            transition(&client.post(&format!("/api/v1/experiments/{}/launch", ident(&experiment)?), &body).await?, "launched")
        }
        Experiments::Pause { experiment, actor } => {
            let body = actor.name().map_or(json!({}), |a| json!({"actor": a}));
            transition(&client.post(&format!("/api/v1/experiments/{}/pause", ident(&experiment)?), &body).await?, "paused")
        }
        Experiments::Stop { experiment, actor } => {
            let body = actor.name().map_or(json!({}), |a| json!({"actor": a}));
            transition(&client.post(&format!("/api/v1/experiments/{}/stop", ident(&experiment)?), &body).await?, "stopped")
        }
    }
}
