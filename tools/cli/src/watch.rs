//! `litmus watch`: the experiment's live socket as a terminal dashboard, or, when stdout is not a
//! terminal (pipes, tests) or with `--plain`, one plain-text snapshot per message.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Client, seg};
use crate::render;

pub struct Options {
    pub experiment: String,
    pub plain: bool,
    pub count: Option<u64>,
}

/// What the dashboard shows: the latest of each kind of message.
#[derive(Default)]
struct State {
    results: Option<Value>,
    bandit: Option<Value>,
    /// Newest first, at most `KEEP_ALERTS`.
    alerts: Vec<Value>,
    updated: Option<DateTime<Utc>>,
    last_kind: String,
}

const KEEP_ALERTS: usize = 5;
const BAR: usize = 30;

impl State {
    fn apply(&mut self, msg: &Value) {
        let kind = msg["type"].as_str().unwrap_or_default();
        match kind {
            "results" => self.results = Some(msg["data"].clone()),
            "bandit" => self.bandit = Some(msg["data"].clone()),
            "alert" => {
                self.alerts.insert(0, msg["data"].clone());
                self.alerts.truncate(KEEP_ALERTS);
            }
            _ => return,
        }
        self.last_kind = kind.to_owned();
        self.updated = Some(Utc::now());
    }

    fn exposures(&self) -> Vec<(String, i64)> {
        let Some(doc) = &self.results else { return Vec::new() };
        doc["variants"].as_array().into_iter().flatten().map(|v| (render::s(&v["key"]), v["exposures"].as_i64().unwrap_or(0))).collect()
    }

    fn header(&self, experiment: &str) -> String {
        let doc = self.results.as_ref();
        let name = doc.map_or(experiment.to_owned(), |d| render::s(&d["experiment"]));
        let status = doc.map_or("-".into(), |d| render::s(&d["status"]));
        let updated = self.updated.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        format!("{name} · {status} · updated {updated} ({})", if self.last_kind.is_empty() { "waiting" } else { &self.last_kind })
    }

    fn lift_rows(&self) -> Vec<[String; 7]> {
        let Some(doc) = &self.results else { return Vec::new() };
        let mut out = Vec::new();
        for (metric, kind) in render::metrics(doc) {
            for row in render::metric_rows(doc, &metric, kind) {
                let [variant, _, value, lift, ci, p, best] = row;
                out.push([metric.clone(), variant, value, lift, ci, p, best]);
            }
        }
        out
    }

    fn srm(&self) -> String {
        self.results.as_ref().map_or("SRM: waiting for results".into(), render::srm_line)
    }

    fn alert_lines(&self) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| format!("#{} {} {} {}: {}", render::s(&a["id"]), render::time(&a["created_at"]), render::s(&a["severity"]), render::s(&a["kind"]), render::s(&a["title"])))
            .collect()
    }

    fn bandit_line(&self) -> Option<String> {
        let b = self.bandit.as_ref()?;
        let arms: Vec<String> = b["variants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| format!("{} P(best) {} weight {}", render::s(&v["key"]), v["win_probability"].as_f64().map_or("-".into(), |p| format!("{p:.3}")), v["weight"].as_f64().map_or("-".into(), |w| format!("{w:.4}"))))
            .collect();
        Some(format!("bandit: stage {}, top {}{}; {}", render::s(&b["stage"]), render::s(&b["top_variant"]), if b["converged"] == true { " (converged)" } else { "" }, arms.join("; ")))
    }

    /// The plain-text snapshot (also what tests read).
    fn snapshot(&self, experiment: &str) -> String {
        use std::fmt::Write as _;
        let mut out = format!("── {} ──\n", self.header(experiment));
        let exposures = self.exposures();
        let total: i64 = exposures.iter().map(|(_, n)| n).sum();
        let max = exposures.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let width = exposures.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let _ = writeln!(out, "exposures ({total} units)");
        for (k, n) in &exposures {
            let share = if total > 0 { *n as f64 / total as f64 } else { 0.0 };
            let _ = writeln!(out, "  {k:<width$}  {n:>7}  {}  {}", bar(*n, max), render::pct(share));
        }
        let rows = self.lift_rows();
        if !rows.is_empty() {
            let control = self.results.as_ref().map_or("-".into(), |d| render::s(&d["control"]));
            let _ = writeln!(out, "lifts vs {control}");
            let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
            for l in render::table(&["METRIC", "VARIANT", "VALUE", "LIFT", "95% CI", "P-VALUE", "P(BEST)"], &rows).lines() {
                let _ = writeln!(out, "  {l}");
            }
        }
        let _ = writeln!(out, "{}", self.srm());
        if let Some(b) = self.bandit_line() {
            let _ = writeln!(out, "{b}");
        }
        let alerts = self.alert_lines();
        if alerts.is_empty() {
            out.push_str("alerts: none\n");
        } else {
            out.push_str("alerts\n");
            for a in alerts {
                let _ = writeln!(out, "  {a}");
            }
        }
        out
    }
}

fn bar(n: i64, max: i64) -> String {
    let filled = if max > 0 { ((n as f64 / max as f64) * BAR as f64).round() as usize } else { 0 };
    format!("{}{}", "█".repeat(filled.min(BAR)), "░".repeat(BAR - filled.min(BAR)))
}

fn ws_url(base: &str, experiment: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(&format!("{base}/api/v1/ws/experiments/{}/live", seg(experiment))).context("--url")?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).map_err(|()| anyhow::anyhow!("--url `{base}`: cannot make a WebSocket URL of it"))?;
    Ok(url.into())
}

pub async fn run(client: &Client, opts: Options) -> anyhow::Result<()> {
    // The alerts raised before we connected: the socket only pushes new ones.
    let mut state = State::default();
    let recent = client.get("/api/v1/alerts", &[("experiment", opts.experiment.clone()), ("limit", KEEP_ALERTS.to_string())]).await?;
    state.alerts = recent.as_array().cloned().unwrap_or_default();

    let url = ws_url(&client.base, &opts.experiment)?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            anyhow::anyhow!("cannot reach the control plane at {}: connection refused (is it running? set --url or LITMUS_URL)", client.base)
        }
        other => anyhow::anyhow!("cannot open the live socket {url}: {other}"),
    })?;
    ws.send(Message::Text(json!({"type": "auth", "token": client.token}).to_string().into())).await.context("sending the auth message")?;

    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Value>>(64);
    tokio::spawn(async move {
        while let Some(msg) = ws.next().await {
            let item = match msg {
                Ok(Message::Text(t)) => serde_json::from_str::<Value>(&t).context("the server sent a message that is not JSON"),
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => Err(anyhow::anyhow!("the live socket failed: {e}")),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
        let _ = tx.send(Err(anyhow::anyhow!("the server closed the live socket"))).await;
    });

    if opts.plain || !std::io::stdout().is_terminal() {
        plain(&mut state, &mut rx, &opts).await
    } else {
        dashboard(&mut state, &mut rx, &opts).await
    }
}

/// An `{"type":"error"}` message as one line: the socket's own status and the usual error body.
fn server_error(msg: &Value) -> anyhow::Error {
    let e = &msg["error"];
    let status = msg["status"].as_u64().map_or(String::new(), |s| format!("{s} "));
    let mut line = format!("{status}{}: {}", render::s(&e["code"]), render::s(&e["message"]));
    if msg["status"] == 401 {
        line.push_str(" (give --token, or set LITMUS_TOKEN or ADMIN_API_TOKENS)");
    }
    anyhow::anyhow!(line)
}

/// Handles one message; true once `--count` results messages were seen.
fn handle(state: &mut State, msg: &Value, seen: &mut u64, opts: &Options) -> anyhow::Result<bool> {
    if msg["type"] == "error" {
        return Err(server_error(msg));
    }
    state.apply(msg);
    if msg["type"] == "results" {
        *seen += 1;
    }
    Ok(opts.count.is_some_and(|c| *seen >= c))
}

async fn plain(state: &mut State, rx: &mut mpsc::Receiver<anyhow::Result<Value>>, opts: &Options) -> anyhow::Result<()> {
    let mut seen = 0;
    while let Some(msg) = rx.recv().await {
        let msg = msg?;
        let done = handle(state, &msg, &mut seen, opts)?;
        if matches!(msg["type"].as_str(), Some("results" | "bandit" | "alert")) && !crate::written(&format!("{}\n", state.snapshot(&opts.experiment)))? {
            return Ok(());
        }
        if done {
            return Ok(());
        }
    }
    bail!("the live socket ended")
}

async fn dashboard(state: &mut State, rx: &mut mpsc::Receiver<anyhow::Result<Value>>, opts: &Options) -> anyhow::Result<()> {
    // ratatui::init restores the terminal from its panic hook too.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            // Raw mode may be on already when entering the alternate screen failed.
            ratatui::restore();
            return Err(anyhow::Error::new(e).context("cannot take over the terminal (use --plain)"));
        }
    };
    let quit = Arc::new(AtomicBool::new(false));
    let (keys_tx, mut keys) = mpsc::channel::<()>(1);
    let stop = quit.clone();
    // crossterm's reads block; a thread polls them so the socket is never held up.
    let reader = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(true) = event::poll(Duration::from_millis(100))
                && let Ok(Event::Key(k)) = event::read()
                && k.kind == KeyEventKind::Press
                && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
            {
                let _ = keys_tx.blocking_send(());
                return;
            }
        }
    });
    let mut seen = 0;
    let outcome: anyhow::Result<()> = async {
        loop {
            terminal.draw(|f| draw(f, state, &opts.experiment))?;
            tokio::select! {
                _ = keys.recv() => return Ok(()),
                msg = rx.recv() => {
                    let Some(msg) = msg else { bail!("the live socket ended") };
                    if handle(state, &msg?, &mut seen, opts)? {
                        terminal.draw(|f| draw(f, state, &opts.experiment))?;
                        return Ok(());
                    }
                }
                // Redrawn now and then so a resized window is filled again.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    .await;
    quit.store(true, Ordering::Relaxed);
    ratatui::restore();
    let _ = reader.join();
    outcome
}

fn draw(f: &mut ratatui::Frame, state: &State, experiment: &str) {
    let exposures = state.exposures();
    let lifts = state.lift_rows();
    let [head, exp, lift, srm, alerts, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(exposures.len() as u16 + 2),
        Constraint::Length(lifts.len().max(1) as u16 + 3),
        Constraint::Length(if state.bandit.is_some() { 4 } else { 2 }),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(state.header(experiment)).bold(), head);

    let total: i64 = exposures.iter().map(|(_, n)| n).sum();
    let max = exposures.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let width = exposures.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let lines: Vec<Line> = exposures
        .iter()
        .map(|(k, n)| {
            let share = if total > 0 { *n as f64 / total as f64 } else { 0.0 };
            Line::from(vec![Span::raw(format!("{k:<width$}  {n:>7}  ")), Span::styled(bar(*n, max), Style::new().fg(Color::Cyan)), Span::raw(format!("  {}", render::pct(share)))])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(format!(" exposures ({total} units) "))), exp);

    let header = Row::new(["metric", "variant", "value", "lift", "95% CI", "p", "P(best)"]).style(Style::new().add_modifier(Modifier::BOLD));
    let rows = lifts.iter().map(|r| {
        let good = r[5].starts_with('<') || r[5].parse::<f64>().is_ok_and(|p| p < 0.05);
        Row::new(r.clone()).style(if good { Style::new().fg(Color::Green) } else { Style::new() })
    });
    let widths = [Constraint::Fill(2), Constraint::Fill(1), Constraint::Length(10), Constraint::Length(10), Constraint::Fill(2), Constraint::Length(8), Constraint::Length(8)];
    f.render_widget(Table::new(rows, widths).header(header).block(Block::new().borders(Borders::ALL).title(" lifts vs control ")), lift);

    let srm_text = state.srm();
    let flagged = state.results.as_ref().is_some_and(|d| d["srm"]["flagged"] == true);
    let mut srm_lines = vec![Line::styled(srm_text, if flagged { Style::new().fg(Color::Red).bold() } else { Style::new() })];
    if let Some(b) = state.bandit_line() {
        srm_lines.push(Line::raw(b));
    }
    f.render_widget(Paragraph::new(srm_lines).wrap(Wrap { trim: true }), srm);

    let alert_lines: Vec<Line> = state
        .alerts
        .iter()
        .zip(state.alert_lines())
        .map(|(a, text)| Line::styled(text, if a["severity"] == "critical" { Style::new().fg(Color::Red) } else { Style::new() }))
        .collect();
    f.render_widget(Paragraph::new(alert_lines).wrap(Wrap { trim: true }).block(Block::new().borders(Borders::ALL).title(" latest alerts ")), alerts);
    f.render_widget(Paragraph::new("q quits").dim(), foot);
}
