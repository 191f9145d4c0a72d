//! `GET /api/v1/ws/experiments/{id}/live`: a WebSocket pushing results snapshots as events arrive.
//!
//! Browsers cannot put headers on a WebSocket and tokens must stay out of URLs, so a client
//! either sends `Authorization: Bearer …` on the upgrade (services) or `{"type":"auth","token":…}`
//! as its first message (browsers). Then the server sends `{"type":"results","data":<results>}`
//! at once, after every ingest that touched the experiment (at most once a second), and every
//! 15 s regardless (so lifecycle changes and other instances' ingests show up too). Each push is
//! followed by `{"type":"alert","data":<alert>}` for every alert of the experiment raised since
//! the previous one (bandits also get `{"type":"bandit"}`).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use super::auth::Role;
use crate::keys::Caller;
use crate::experiments::find;
use super::{ApiError, AppState};
use crate::results;

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const REFRESH: Duration = Duration::from_secs(15);
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a client may send: the auth message is all it has to say (tungstenite's
/// default would buffer 64 MiB from anyone, before auth).
const MAX_INCOMING: usize = 8 * 1024;

/// Open live sockets per key name, held by each session for its lifetime.
#[derive(Default)]
pub struct Sockets(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One socket counted against its key; released when the session ends.
struct Held<'a> {
    sockets: &'a Sockets,
    key: String,
}

impl Sockets {
    fn hold(&self, key: &str, cap: usize) -> Option<Held<'_>> {
        let mut open = self.0.lock().ok()?;
        let n = open.entry(key.to_owned()).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Held { sockets: self, key: key.to_owned() })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.sockets.0.lock()
            && let Some(n) = open.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/ws/experiments/{id}/live", get(upgrade))
}

async fn upgrade(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let reader = reader(super::auth::caller(&state, &headers).await.ok().flatten());
    ws.max_message_size(MAX_INCOMING).max_frame_size(MAX_INCOMING).on_upgrade(move |socket| session(socket, state, id, reader))
}

/// The caller's key name, if it may read.
fn reader(caller: Option<Caller>) -> Option<String> {
    caller.filter(|c| matches!(c.role, Role::Admin | Role::Read)).map(|c| c.name)
}

async fn session(mut socket: WebSocket, state: AppState, id: String, mut reader_name: Option<String>) {
    if reader_name.is_none() {
        reader_name = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let token = serde_json::from_str::<Value>(&text).ok().filter(|v| v["type"] == "auth").and_then(|v| v["token"].as_str().map(str::to_owned));
                match token {
                    Some(t) => reader(crate::keys::authenticate(&state.db, &state.keys, &state.config, &t).await.ok().flatten()),
                    None => None,
                }
            }
            _ => None,
        };
    }
    let Some(name) = reader_name else {
        let _ = send_error(&mut socket, ApiError::Unauthorized).await;
        return;
    };
    let Some(_held) = state.sockets.hold(&name, state.config.live_sockets_per_key) else {
        let cap = state.config.live_sockets_per_key;
        let _ = send_error(&mut socket, ApiError::TooManyRequests(format!("at most {cap} live sockets per key (LIVE_SOCKETS_PER_KEY)"))).await;
        return;
    };
    let row = match find(&state.db, &id).await {
        Ok(row) => row,
        Err(e) => {
            let _ = send_error(&mut socket, e).await;
            return;
        }
    };
    let mut events = state.live.subscribe();
    // Alerts raised from now on are pushed as they come (the feed has the earlier ones).
    let mut last_alert = crate::alerts::last_id(&state.db, row.id).await.unwrap_or(0);
    let mut next_allowed = Instant::now();
    let mut pending = true;
    loop {
        if pending && Instant::now() >= next_allowed {
            if push(&mut socket, &state, row.id, &id, &mut last_alert).await.is_err() {
                return;
            }
            pending = false;
            next_allowed = Instant::now() + MIN_INTERVAL;
        }
        let wake = if pending { next_allowed } else { Instant::now() + REFRESH };
        tokio::select! {
            () = sleep_until(wake) => pending = true,
            msg = events.recv() => match msg {
                Ok(touched) if touched == row.id => pending = true,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => pending = true,
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn push(socket: &mut WebSocket, state: &AppState, experiment: Uuid, id: &str, last_alert: &mut i64) -> Result<(), axum::Error> {
    // Reload: status, ramp and variants may have changed since the socket opened.
    let row = match find(&state.db, id).await {
        Ok(row) if row.id == experiment => row,
        Ok(_) => return send_error(socket, ApiError::not_found("experiment", id)).await,
        Err(e) => return send_error(socket, e).await,
    };
    let data = match results::compute(&state.db, &row).await {
        Ok(data) => data,
        Err(e) => return send_error(socket, e).await,
    };
    let text = json!({"type": "results", "data": &data}).to_string();
    socket.send(Message::Text(text.into())).await?;
    // Bandits also get their readout (weights served and proposed, P(best), regret) as a message
    // of its own: the one the results just computed and carry.
    if let Some(readout) = &data.bandit {
        let text = json!({"type": "bandit", "data": readout}).to_string();
        socket.send(Message::Text(text.into())).await?;
    }
    // Read from the table, not a channel: the watch job may run in another control plane.
    for alert in crate::alerts::after(&state.db, experiment, *last_alert).await.unwrap_or_default() {
        *last_alert = alert.id;
        let text = json!({"type": "alert", "data": alert}).to_string();
        socket.send(Message::Text(text.into())).await?;
    }
    Ok(())
}

async fn send_error(socket: &mut WebSocket, e: ApiError) -> Result<(), axum::Error> {
    let response = axum::response::IntoResponse::into_response(e);
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({"error": {"code": "internal", "message": "error"}}));
    v["type"] = json!("error");
    v["status"] = json!(status.as_u16());
    socket.send(Message::Text(v.to_string().into())).await
}
