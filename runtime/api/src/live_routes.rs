//! What the dashboard watches: a pipeline's plugin log lines
//! (`GET /api/v1/pipelines/{id}/logs`), and live streams of server-sent
//! events: a pipeline's status every second with its log lines as they come
//! (`GET /api/v1/pipelines/{id}/events`), and every pipeline's summary every
//! second (`GET /api/v1/events`). A stream ends when its client goes away.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::Json;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::logs::PluginLogs;
use crate::model::{ErrorBody, Logs, PipelineSummary};
use crate::pipeline_routes::Id;
use crate::{ApiError, AppState};

/// How often a stream sends the status.
const TICK: Duration = Duration::from_secs(1);
/// Events a stream may hold for a slow client before it waits.
const BUFFER: usize = 64;

/// The events an `mpsc` receiver gets, as a stream for [`Sse`].
fn events(rx: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) })
}

/// `event` with `value` as its JSON data.
fn json_event(event: &str, value: &impl serde::Serialize) -> Event {
    Event::default().event(event).data(serde_json::to_string(value).expect("API bodies serialise"))
}

/// The last plugin log lines of a pipeline (at most 500), oldest first: the
/// lines its operators' plugins logged and printed, tagged
/// `plugin@version/operator[task]`.
#[utoipa::path(
    get,
    path = "/api/v1/pipelines/{id}/logs",
    tag = "pipelines",
    params(Id),
    responses((status = 200, body = Logs), (status = 404, description = "no such pipeline", body = ErrorBody))
)]
pub(crate) async fn pipeline_logs(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Logs>, ApiError> {
    state.pipelines.get(&id)?;
    Ok(Json(Logs { lines: PluginLogs::global().lines(&id) }))
}

/// A pipeline's live status as server-sent events: `event: pipeline` every
/// second with its status (as `GET /api/v1/pipelines/{id}`), and `event:
/// log` with each plugin log line (as in `.../logs`) as it is logged.
#[utoipa::path(
    get,
    path = "/api/v1/pipelines/{id}/events",
    tag = "pipelines",
    params(Id),
    responses(
        (status = 200, description = "a stream of server-sent events (pipeline, log)", body = String, content_type = "text/event-stream"),
        (status = 404, description = "no such pipeline", body = ErrorBody)
    )
)]
pub(crate) async fn pipeline_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    state.pipelines.get(&id)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut logs = PluginLogs::global().subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let event = tokio::select! {
                _ = tick.tick() => {
                    let (p, id) = (state.pipelines.clone(), id.clone());
                    let detail = tokio::task::spawn_blocking(move || p.get(&id).map(|e| p.describe(&e))).await;
                    match detail {
                        Ok(Ok(d)) => json_event("pipeline", &d),
                        // Deleted meanwhile: the stream ends.
                        _ => break,
                    }
                }
                line = logs.recv() => match line {
                    Ok((pipeline, line)) if *pipeline == *id => json_event("log", &line),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                    Err(RecvError::Closed) => break,
                },
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    Ok(Sse::new(events(rx)))
}

/// Every pipeline's summary as server-sent events: `event: pipelines` every
/// second with the list (as `GET /api/v1/pipelines`).
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "pipelines",
    responses((status = 200, description = "a stream of server-sent events (pipelines)", body = String, content_type = "text/event-stream"))
)]
pub(crate) async fn node_events(State(state): State<Arc<AppState>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let p = state.pipelines.clone();
            let Ok(list) = tokio::task::spawn_blocking(move || p.list()).await else { break };
            let list: Vec<PipelineSummary> = list;
            if tx.send(json_event("pipelines", &list)).await.is_err() {
                break;
            }
        }
    });
    Sse::new(events(rx))
}
