//! `POST /api/v1/pipelines/{id}/operators/{op}/swap`: the new version is
//! loaded (compiled or from the cache) and tried out off the hot path (an
//! instance is created and opened on scratch state); only then does the job
//! switch, at the next checkpoint barrier (see `weir_engine::Job` swaps and
//! `supervisor.rs` for probation and rollback).

use std::time::Duration;

use axum::http::StatusCode;
use weir_engine::SwapState;
use weir_spec::BuildContext;

use crate::error::ApiError;
use crate::model::{SwapInfo, SwapStatus};
use crate::pipelines::{count_swap, plugin_ref, ActiveSwap, Entry, Pipelines};
use weir_engine::now_ms;

/// How long the request waits for every task to switch.
const SWITCH_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn swap(p: &Pipelines, e: &Entry, op: &str, plugin: &str, probation: Duration) -> Result<(), ApiError> {
    let (name, version) = plugin_ref(plugin)
        .ok_or_else(|| ApiError::bad_request(format!("plugin: '{plugin}' is not NAME@VERSION of a plugin in the registry")))?;
    let stored = p.registry.get(name, version).ok_or_else(|| {
        ApiError::not_found(format!("plugin {plugin} is not in this node's registry ({})", p.registry.describe_versions(name)))
    })?;
    let from = {
        let r = e.record.lock().unwrap();
        match r.plugins.get(op) {
            Some(f) => f.clone(),
            None => {
                let ops: Vec<_> = r.plugins.keys().cloned().collect();
                return Err(ApiError::not_found(format!("pipeline '{}' has no operator '{op}' (operators: {})", e.id, ops.join(", "))));
            }
        }
    };
    let (control, planned, env) = {
        let l = e.live.lock().unwrap();
        let Some(run) = &l.running else {
            return Err(ApiError::conflict(format!("pipeline '{}' is {}; a swap needs it running", e.id, l.status)));
        };
        if let Some(s) = l.swap.as_ref().filter(|s| s.ticket.is_some()) {
            return Err(ApiError::conflict(format!(
                "operator '{}' of pipeline '{}' is being swapped to {} ({}); wait until it is confirmed or rolled back",
                s.info.operator, e.id, s.info.to, s.info.status.as_str()
            )));
        }
        let planned = run.nodes.iter().find(|o| o.name == op).cloned().expect("every operator is planned");
        (run.control.clone(), planned, run.env.clone())
    };
    if from == plugin {
        return Err(ApiError::conflict(format!("operator '{op}' of pipeline '{}' already runs {plugin}", e.id)));
    }
    let mut info = SwapInfo {
        operator: op.to_string(),
        from: from.clone(),
        to: plugin.to_string(),
        status: SwapStatus::Pending,
        epoch: None,
        requested_ms: now_ms(),
        switch_ms: None,
        reason: None,
        probation_ms: Some(probation.as_millis() as u64),
        switched_at_ms: None,
    };
    let refuse = |info: &mut SwapInfo, why: String| {
        info.status = SwapStatus::Refused;
        info.reason = Some(why.clone());
        let mut l = e.live.lock().unwrap();
        l.set_swap(ActiveSwap { info: info.clone(), ticket: None, digest: stored.digest.clone() });
        count_swap(&mut l, SwapStatus::Refused);
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why)
    };
    // Off the hot path: compile (or fetch from the cache) and try it out, with
    // the builder that planned the operator.
    let Some(descriptor) = p.types.with_plugin(&planned.descriptor, plugin) else {
        return Err(refuse(&mut info, format!("operator '{op}' runs no plugin, so it cannot swap to {plugin}")));
    };
    let cx = BuildContext {
        env: &env,
        node: op,
        parallelism: planned.parallelism,
        side_outputs: &planned.side_outputs,
        key_by: None,
        changelog: planned.reads,
    };
    let replacement = match p.types.replacement(&descriptor, &cx) {
        Ok(r) => r,
        Err(err) => return Err(refuse(&mut info, format!("{plugin} cannot replace {from} in operator '{op}': {err}; nothing changed"))),
    };
    let ticket = control
        .swap(op, replacement, probation)
        .map_err(|err| refuse(&mut info, format!("cannot swap operator '{op}': {err}")))?;
    e.live.lock().unwrap().set_swap(ActiveSwap { info, ticket: Some(ticket.clone()), digest: stored.digest.clone() });
    tracing::info!("pipeline '{}': swapping operator '{op}' from {from} to {plugin}", e.id);
    match ticket.wait(SWITCH_WAIT) {
        SwapState::Switched { epoch } => {
            let mut l = e.live.lock().unwrap();
            if let Some(s) = l.swap.as_mut().filter(|s| s.info.status == SwapStatus::Pending) {
                s.info.status = SwapStatus::Switched;
                s.info.epoch = Some(epoch);
                s.info.switch_ms = ticket.switched_at().map(|t| t.duration_since(ticket.requested).as_secs_f64() * 1e3);
                s.info.switched_at_ms = Some(now_ms());
                // Kept until confirmed or rolled back: a node that stops
                // during the probation says so when it starts again.
                let info = s.info.clone();
                drop(l);
                e.persist_swap(Some(info));
            }
            Ok(())
        }
        SwapState::Failed { epoch, message } => Err(ApiError::conflict(format!(
            "operator '{op}' could not switch to {plugin} at checkpoint {epoch}: {message}; the pipeline goes back to {from}"
        ))),
        SwapState::Pending => Ok(()),
    }
}
