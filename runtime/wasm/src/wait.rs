//! The WASI imports that wait on a pollable: `wasi:io/poll`'s `poll` and
//! `pollable.block` (what `std::thread::sleep` and any wait on a clock come
//! down to), replaced by versions that wait at most until the current call's
//! deadline and then stop the guest with [`Stop::Deadline`]. Epoch
//! interruption bounds the time a guest runs wasm code; this bounds the time
//! it waits in the host, so `limits.call_timeout` holds whatever it does.
//!
//! The other WASI imports that may wait (the `blocking-*` stream calls) only
//! see streams that never make them wait: stdin is closed (reads return end of
//! stream at once), stdout and stderr are always ready
//! ([`crate::log_stream`]); there are no preopened directories, and sockets
//! and name lookups are denied, so a guest has no other stream.

use std::future::Future;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::sync::io::poll;
use wasmtime_wasi::p2::DynPollable;

use crate::error::Stop;
use crate::host::HostState;

/// `wasi:io/poll` over an instance's resource table, bounded by `deadline`.
pub(crate) struct BoundedPoll<'a> {
    table: &'a mut ResourceTable,
    deadline: Instant,
}

struct HasBoundedPoll;

impl HasData for HasBoundedPoll {
    type Data<'a> = BoundedPoll<'a>;
}

/// Replace the `wasi:io/poll` functions `wasmtime_wasi` linked with the bounded ones.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let r = poll::add_to_linker::<HostState, HasBoundedPoll>(linker, |s| BoundedPoll {
        table: &mut s.table,
        deadline: s.deadline,
    });
    linker.allow_shadowing(false);
    r
}

/// Run `wait` to completion or until `deadline`, whichever comes first.
fn until<T>(deadline: Instant, wait: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    let at = tokio::time::Instant::from_std(deadline);
    // The timer is made inside the runtime `in_tokio` enters.
    match wasmtime_wasi::runtime::in_tokio(async move { tokio::time::timeout_at(at, wait).await }) {
        Ok(r) => r,
        Err(_) => Err(wasmtime::Error::new(Stop::Deadline)),
    }
}

impl poll::Host for BoundedPoll<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        until(self.deadline, async_poll::Host::poll(&mut *self.table, pollables))
    }
}

impl poll::HostPollable for BoundedPoll<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(&mut *self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        until(self.deadline, async_poll::HostPollable::block(&mut *self.table, pollable))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(&mut *self.table, pollable)
    }
}
