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

use super::auth::{Role, bearer};
use crate::experiments::find;
use super::{ApiError, AppState};
use crate::results;

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const REFRESH: Duration = Duration::from_secs(15);
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router() -> Router<AppState> {
    Router::new().route("/ws/experiments/{id}/live", get(upgrade))
}

async fn upgrade(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let token = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    let header_ok = match token {
        Some(t) => can_read(&state, t).await,
        None => false,
    };
    ws.on_upgrade(move |socket| session(socket, state, id, header_ok))
}

async fn can_read(state: &AppState, token: &str) -> bool {
    let caller = crate::keys::authenticate(&state.db, &state.keys, &state.config, token).await;
    matches!(caller, Ok(Some(c)) if matches!(c.role, Role::Admin | Role::Read))
}

async fn session(mut socket: WebSocket, state: AppState, id: String, mut authed: bool) {
    if !authed {
        authed = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let token = serde_json::from_str::<Value>(&text).ok().filter(|v| v["type"] == "auth").and_then(|v| v["token"].as_str().map(str::to_owned));
                match token {
                    Some(t) => can_read(&state, &t).await,
                    None => false,
                }
            }
            _ => false,
        };
    }
    if !authed {
        let _ = send_error(&mut socket, ApiError::Unauthorized).await;
        return;
    }
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
