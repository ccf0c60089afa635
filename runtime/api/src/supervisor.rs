//! One thread per running pipeline: plan the spec with the plugin versions the
//! pipeline runs now, start the job (resuming from the latest checkpoint),
//! follow its swaps, and when the job fails, start it again:
//!
//! - If a swap has not been confirmed (no checkpoint after the swap's has
//!   completed), the new version is rolled back: the job restarts at once from
//!   the latest checkpoint (the swap's, or an earlier one) with the old
//!   version. Nothing after that checkpoint was published, so nothing is lost
//!   or duplicated.
//! - Otherwise it restarts with what it ran after a back-off: 0.5 s, doubling
//!   up to 60 s, and back to 0.5 s once a run has lasted 60 s. It keeps
//!   trying, since a job's failure may pass (too many open files, a full
//!   disk). A start that fails is retried the same way if the failure may
//!   pass (an I/O error), and leaves the pipeline `failed` if it cannot (a
//!   spec that no longer parses, a plugin missing from the registry, damaged
//!   checkpoints). The status shows the attempt and when the next one starts.

use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_engine::{now_ms, SwapState};

use crate::error::ApiError;
use crate::model::{FailureKind, PipelineStatus, RetryInfo, SwapStatus};
use crate::pipelines::{count_swap, Entry, Pipelines, Running};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before attempt `attempt` + 1 (`attempt` >= 1 failed in a row).
pub(crate) fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Start the supervisor of `entry`; `started` hears whether the first run
/// started (and then a failed first start is not retried); `fresh` starts
/// the first run afresh, deleting the pipeline's checkpoints.
pub(crate) fn spawn(p: &Arc<Pipelines>, entry: &Arc<Entry>, started: Option<Sender<Result<(), ApiError>>>, fresh: bool) {
    let (p, e) = (p.clone(), entry.clone());
    let h = std::thread::Builder::new()
        .name(format!("pipeline-{}", entry.id))
        .spawn(move || supervise(&p, &e, started, fresh))
        .expect("spawn a pipeline supervisor");
    *entry.thread.lock().unwrap() = Some(h);
}

/// A start that failed, and whether trying again may help.
struct StartError {
    error: ApiError,
    transient: bool,
}

impl StartError {
    fn of(error: ApiError, cause: &(dyn std::error::Error + 'static)) -> Self {
        StartError { transient: transient(cause), error }
    }
}

/// Whether a failure may pass by itself: an I/O error is part of it (too
/// many open files, a full disk, a state directory another process still
/// holds), as a cause or, where a cause became text, in its message.
fn transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if c.is::<std::io::Error>() || text.contains("(os error ") || text.contains("is held by another process") {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Plan and start one run.
fn start(p: &Pipelines, e: &Entry, fresh: bool) -> Result<(weir_engine::Job, weir_checkpoint::Launch, Running), StartError> {
    let (text, plugins) = {
        let r = e.record.lock().unwrap();
        (r.spec.clone(), r.plugins.clone())
    };
    let spec = p.parse(&text, Some(&plugins)).map_err(|error| StartError { error, transient: false })?;
    let planned = weir_spec::plan(&spec, &p.types, p.extensions()).map_err(|err| StartError::of(ApiError::bad_request(format!("{err:#}")), &err))?;
    let (nodes, env) = (planned.nodes.clone(), planned.env.clone());
    let opts = weir_checkpoint::LaunchOptions { fresh, from_savepoint: None };
    let mut launch = weir_checkpoint::launch(&spec, planned, &opts).map_err(|err| StartError::of(ApiError::bad_request(format!("{err:#}")), &err))?;
    let dataflow = std::mem::replace(&mut launch.planned.dataflow, weir_engine::Dataflow::new(Default::default()));
    let graph = crate::graph::graph_of(dataflow.logical(), &nodes);
    let job = dataflow.start().map_err(|err| {
        let message = format!("pipeline '{}' failed to start: {err:#}", e.id);
        StartError::of(ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, message), &err)
    })?;
    let running =
        Running { control: job.control(), storage: launch.storage.clone(), nodes, env, spec: Arc::new(spec), started: Instant::now(), graph };
    Ok((job, launch, running))
}

fn supervise(p: &Pipelines, e: &Entry, mut started: Option<Sender<Result<(), ApiError>>>, mut fresh: bool) {
    // Failed attempts in a row.
    let mut attempt = 0;
    loop {
        if e.live.lock().unwrap().stopping {
            e.set_status(PipelineStatus::Stopped, None);
            return;
        }
        let (job, launch, running) = match start(p, e, fresh) {
            Ok(r) => r,
            Err(StartError { error, transient }) => {
                if let Some(s) = started.take() {
                    e.set_status(PipelineStatus::Failed, Some(error.message.clone()));
                    let _ = s.send(Err(error));
                    return;
                }
                if !transient {
                    tracing::error!("pipeline '{}' cannot start: {}", e.id, error.message);
                    e.set_status(PipelineStatus::Failed, Some(error.message));
                    return;
                }
                attempt += 1;
                tracing::warn!("pipeline '{}' cannot start: {}; trying again in {:?}", e.id, error.message, backoff(attempt));
                if !wait_to_retry(e, attempt, error.message) {
                    return;
                }
                continue;
            }
        };
        fresh = false;
        {
            let mut l = e.live.lock().unwrap();
            l.status = PipelineStatus::Running;
            l.error = None;
            l.retry = None;
            l.resumed = launch.resumed.as_ref().map(|r| r.name.clone());
            // A stop or delete that came while the job started saw no job to stop.
            if l.stopping {
                running.control.cancel();
            }
            l.running = Some(running);
        }
        resumed_after_interrupted_swap(e, launch.resumed.as_ref());
        tracing::info!("pipeline '{}' is running", e.id);
        if let Some(s) = started.take() {
            let _ = s.send(Ok(()));
        }
        let run_started = Instant::now();
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
                // Finished for good: a node restart does not run it again.
                {
                    let mut r = e.record.lock().unwrap();
                    r.running = false;
                    r.finished = true;
                }
                if let Err(err) = e.save() {
                    tracing::error!("pipeline '{}': cannot record that it finished: {}", e.id, err.message);
                }
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
        if run_started.elapsed() >= MAX_BACKOFF {
            attempt = 0;
        }
        attempt += 1;
        e.live.lock().unwrap().restarts += 1;
        tracing::warn!("pipeline '{}' failed: {err}; restarting from its latest checkpoint in {:?}", e.id, backoff(attempt));
        if !wait_to_retry(e, attempt, err) {
            return;
        }
    }
}

/// Wait out the back-off after `attempt` failures, showing it in the status;
/// false if a stop came meanwhile.
fn wait_to_retry(e: &Entry, attempt: u32, error: String) -> bool {
    let delay = backoff(attempt);
    {
        let mut l = e.live.lock().unwrap();
        l.status = PipelineStatus::Restarting;
        l.error = Some(error);
        l.retry = Some(RetryInfo { attempt, next_retry_ms: now_ms() + delay.as_millis() as i64, backoff_s: delay.as_secs_f64() });
    }
    let until = Instant::now() + delay;
    loop {
        if e.live.lock().unwrap().stopping {
            e.live.lock().unwrap().retry = None;
            e.set_status(PipelineStatus::Stopped, None);
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The first run after a node that stopped during a swap's probation: say
/// where it resumed (with the old version), log it, and forget the swap.
fn resumed_after_interrupted_swap(e: &Entry, resumed: Option<&weir_checkpoint::Resumed>) {
    let mut l = e.live.lock().unwrap();
    if !std::mem::take(&mut l.interrupted_swap) {
        return;
    }
    let Some(s) = l.swap.as_mut() else { return };
    let from = match resumed {
        Some(r) => format!("resumed from checkpoint {}", r.name),
        None => "started afresh".to_string(),
    };
    let reason = format!("the node stopped during the swap's probation; the pipeline {from} with {}", s.info.from);
    tracing::warn!("pipeline '{}': the swap of '{}' to {} was rolled back: {reason}", e.id, s.info.operator, s.info.to);
    s.info.reason = Some(reason);
    count_swap(&mut l, SwapStatus::RolledBack);
    drop(l);
    e.persist_swap(None);
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
            let mut switched = None;
            if s.info.status == SwapStatus::Pending {
                s.info.status = SwapStatus::Switched;
                s.info.switch_ms = ticket.switched_at().map(|t| t.duration_since(ticket.requested).as_secs_f64() * 1e3);
                switched = Some(s.info.clone());
            }
            if last.is_some_and(|l| l > epoch) {
                s.info.status = SwapStatus::Confirmed;
                s.ticket = None;
                let (op, to, digest) = (s.info.operator.clone(), s.info.to.clone(), s.digest.clone());
                count_swap(&mut l, SwapStatus::Confirmed);
                drop(l);
                {
                    let mut r = e.record.lock().unwrap();
                    r.plugins.insert(op.clone(), to.clone());
                    r.swap = None;
                }
                if let Err(err) = e.save() {
                    tracing::error!("pipeline '{}': cannot record the swap of '{op}' to {to}: {}", e.id, err.message);
                }
                if let Some(st) = storage {
                    st.set_plugin(&op, &to, &digest);
                }
                tracing::info!("pipeline '{}': swap of '{op}' to {to} confirmed", e.id);
            } else if let Some(info) = switched {
                drop(l);
                e.persist_swap(Some(info));
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
    drop(l);
    e.persist_swap(None);
    true
}
