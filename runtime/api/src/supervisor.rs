//! One thread per running pipeline: plan the spec with the plugin versions the
//! pipeline runs now, start the job (resuming from the latest checkpoint),
//! follow its swaps, and when the job fails, start it again:
//!
//! - If a swap has not been confirmed (no checkpoint after the swap's has
//!   completed), the new version is rolled back: the job restarts from the
//!   latest checkpoint (the swap's, or an earlier one) with the old version.
//!   Nothing after that checkpoint was published, so nothing is lost or
//!   duplicated.
//! - Otherwise it restarts with what it ran, at most `MAX_RESTARTS` times in
//!   `RESTART_WINDOW` (then it is `failed`, with the error).

use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_engine::SwapState;

use crate::error::ApiError;
use crate::model::{FailureKind, PipelineStatus, SwapStatus};
use crate::pipelines::{count_swap, Entry, Pipelines, Running};

const MAX_RESTARTS: usize = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// Start the supervisor of `entry`; `started` hears whether the first run started.
pub(crate) fn spawn(p: &Arc<Pipelines>, entry: &Arc<Entry>, started: Option<Sender<Result<(), ApiError>>>) {
    let (p, e) = (p.clone(), entry.clone());
    let h = std::thread::Builder::new()
        .name(format!("pipeline-{}", entry.id))
        .spawn(move || supervise(&p, &e, started))
        .expect("spawn a pipeline supervisor");
    *entry.thread.lock().unwrap() = Some(h);
}

/// Plan and start one run.
fn start(p: &Pipelines, e: &Entry) -> Result<(weir_engine::Job, weir_checkpoint::Launch, Running), ApiError> {
    let (text, plugins) = {
        let r = e.record.lock().unwrap();
        (r.spec.clone(), r.plugins.clone())
    };
    let spec = p.parse(&text, Some(&plugins))?;
    let planned = weir_spec::plan(&spec, &p.types, p.extensions()).map_err(|err| ApiError::bad_request(format!("{err:#}")))?;
    let (nodes, env) = (planned.nodes.clone(), planned.env.clone());
    let mut launch =
        weir_checkpoint::launch(&spec, planned, &Default::default()).map_err(|err| ApiError::bad_request(format!("{err:#}")))?;
    let dataflow = std::mem::replace(&mut launch.planned.dataflow, weir_engine::Dataflow::new(Default::default()));
    let job = dataflow.start().map_err(|err| {
        ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, format!("pipeline '{}' failed to start: {err:#}", e.id))
    })?;
    let running = Running { control: job.control(), storage: launch.storage.clone(), nodes, env, spec, started: Instant::now() };
    Ok((job, launch, running))
}

fn supervise(p: &Pipelines, e: &Entry, mut started: Option<Sender<Result<(), ApiError>>>) {
    let mut failures: Vec<Instant> = Vec::new();
    loop {
        if e.live.lock().unwrap().stopping {
            e.set_status(PipelineStatus::Stopped, None);
            return;
        }
        let (job, launch, running) = match start(p, e) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!("pipeline '{}' cannot start: {}", e.id, err.message);
                e.set_status(PipelineStatus::Failed, Some(err.message.clone()));
                if let Some(s) = started.take() {
                    let _ = s.send(Err(err));
                }
                return;
            }
        };
        {
            let mut l = e.live.lock().unwrap();
            l.status = PipelineStatus::Running;
            l.error = None;
            l.resumed = launch.resumed.as_ref().map(|r| r.name.clone());
            // A stop or delete that came while the job started saw no job to stop.
            if l.stopping {
                running.control.cancel();
            }
            l.running = Some(running);
        }
        tracing::info!("pipeline '{}' is running", e.id);
        if let Some(s) = started.take() {
            let _ = s.send(Ok(()));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(job.wait());
        });
        let result = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => break r,
                Err(RecvTimeoutError::Timeout) => confirm_swap(e),
                Err(RecvTimeoutError::Disconnected) => break Err(weir_engine::EngineError::Cancelled),
            }
        };
        confirm_swap(e);
        // The run is over: release its state directory before the next.
        drop(launch);
        let stopping = {
            let mut l = e.live.lock().unwrap();
            l.running = None;
            l.stopping
        };
        let err = match result {
            Ok(_) => {
                e.set_status(PipelineStatus::Finished, None);
                return;
            }
            Err(_) if stopping => {
                e.set_status(PipelineStatus::Stopped, None);
                return;
            }
            Err(err) => {
                *e.live.lock().unwrap().failures.entry(FailureKind::of(&err)).or_default() += 1;
                format!("{err:#}")
            }
        };
        if roll_back(e, &err) {
            tracing::warn!("pipeline '{}' failed during a swap's probation: {err}; rolled back", e.id);
            e.set_status(PipelineStatus::Restarting, Some(err));
            continue;
        }
        let now = Instant::now();
        failures.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        failures.push(now);
        if failures.len() > MAX_RESTARTS {
            tracing::error!("pipeline '{}' failed {} times within {:?}: {err}", e.id, failures.len(), RESTART_WINDOW);
            e.set_status(PipelineStatus::Failed, Some(err));
            return;
        }
        tracing::warn!("pipeline '{}' failed: {err}; restarting from its latest checkpoint", e.id);
        {
            let mut l = e.live.lock().unwrap();
            l.restarts += 1;
            l.status = PipelineStatus::Restarting;
            l.error = Some(err);
        }
        std::thread::sleep(RESTART_DELAY);
    }
}

/// A switched swap is confirmed once a checkpoint after its own completes: the
/// pipeline runs the new version from then on (also after restarts).
fn confirm_swap(e: &Entry) {
    let mut l = e.live.lock().unwrap();
    let last = l.running.as_ref().and_then(|r| r.control.checkpoints().last_epoch);
    let storage = l.running.as_ref().and_then(|r| r.storage.clone());
    let Some(s) = l.swap.as_mut() else { return };
    let Some(ticket) = &s.ticket else { return };
    match ticket.state() {
        SwapState::Switched { epoch } => {
            s.info.epoch = Some(epoch);
            if s.info.status == SwapStatus::Pending {
                s.info.status = SwapStatus::Switched;
                s.info.switch_ms = ticket.switched_at().map(|t| t.duration_since(ticket.requested).as_secs_f64() * 1e3);
            }
            if last.is_some_and(|l| l > epoch) {
                s.info.status = SwapStatus::Confirmed;
                s.ticket = None;
                let (op, to, digest) = (s.info.operator.clone(), s.info.to.clone(), s.digest.clone());
                count_swap(&mut l, SwapStatus::Confirmed);
                drop(l);
                e.record.lock().unwrap().plugins.insert(op.clone(), to.clone());
                if let Err(err) = e.save() {
                    tracing::error!("pipeline '{}': cannot record the swap of '{op}' to {to}: {}", e.id, err.message);
                }
                if let Some(st) = storage {
                    st.set_plugin(&op, &to, &digest);
                }
                tracing::info!("pipeline '{}': swap of '{op}' to {to} confirmed", e.id);
            }
        }
        SwapState::Failed { epoch, message } => {
            s.info.epoch = Some(epoch);
            s.info.reason = Some(message);
        }
        SwapState::Pending => {}
    }
}

/// The job failed: if a swap was not confirmed, go back to the old version.
fn roll_back(e: &Entry, err: &str) -> bool {
    let mut l = e.live.lock().unwrap();
    let Some(s) = l.swap.as_mut() else { return false };
    if s.ticket.is_none() {
        return false;
    }
    s.ticket = None;
    s.info.status = SwapStatus::RolledBack;
    let reason = match s.info.reason.take() {
        Some(r) => format!("{r}; the job failed: {err}"),
        None => err.to_string(),
    };
    s.info.reason = Some(format!("{} was rolled back to {}: {reason}", s.info.to, s.info.from));
    count_swap(&mut l, SwapStatus::RolledBack);
    true
}
