//! Test guest attacking the host's limits, on the raw WIT bindings (no SDK
//! dispatch) so it can also break the operator contract. Each input row's
//! value is a command, `name` or `name:N`; rows before it pass through.
//!
//! * `ok`: emit the record.
//! * `sleep`: `std::thread::sleep` 30 s; `poll`: `wasi:io/poll.poll` on a 30 s
//!   clock pollable; `stdin`: read stdin to its end and emit how many bytes.
//! * `touch-loop`, `touch-oom`, `touch-sleep`: a state call for the row, then
//!   loop forever, allocate without end, or sleep 30 s.
//! * `timers:N`: register N event-time timers (times 0..N) for the row's key.
//! * `log:N`, `print:N`: one log line (or stdout line) of N bytes; `logs:N`:
//!   N log lines of 1000 bytes.
//! * `error:N`, `panic:N`: fail the call with a message of N bytes.
//! * `bad-cause`, `bad-ends`, `bad-output`: emit the record with a cause out of
//!   range, key ends out of order, or to an undeclared side output.

use std::cell::Cell;
use std::io::Read;
use std::time::Duration;

use weir_sdk::wit::exports::weir::operator::handler::Guest;
use weir_sdk::wit::weir::operator::{runtime, state, timers, types};

thread_local! {
    static ROW: Cell<Option<u32>> = const { Cell::new(None) };
    static TOUCH: Cell<u32> = const { Cell::new(0) };
}

struct Adversary;

const LONG: Duration = Duration::from_secs(30);

fn arg(cmd: &str) -> usize {
    cmd.split_once(':').and_then(|(_, n)| n.parse().ok()).unwrap_or(1)
}

fn span(ends: &[u32], i: usize) -> std::ops::Range<usize> {
    (if i == 0 { 0 } else { ends[i - 1] as usize })..ends[i] as usize
}

/// A state call scoped to `row`.
fn touch(row: u32) {
    state::reducing_add(TOUCH.get(), row, 1);
}

impl Guest for Adversary {
    fn open(_config: Vec<(String, String)>) -> Result<(), String> {
        std::panic::set_hook(Box::new(|info| {
            runtime::report_panic(ROW.get(), info.payload_as_str().unwrap_or("panic"));
        }));
        let d = state::StateDescriptor {
            name: "touch".into(),
            kind: state::StateKind::Reducing(state::Reducer::Sum),
            ttl_ms: None,
        };
        TOUCH.set(state::declare(&d)?);
        Ok(())
    }

    fn process(input: types::Batch) -> Result<types::Emitted, types::OperatorError> {
        let mut out = types::Emitted {
            records: types::Batch {
                keys: vec![],
                key_ends: vec![],
                values: vec![],
                value_ends: vec![],
                timestamps: vec![],
                headers: vec![],
            },
            outputs: vec![],
            causes: vec![],
        };
        let mut broken = None;
        for i in 0..input.key_ends.len() {
            let row = i as u32;
            ROW.set(Some(row));
            let key = &input.keys[span(&input.key_ends, i)];
            let value = &input.values[span(&input.value_ends, i)];
            let cmd = String::from_utf8_lossy(value).into_owned();
            let mut emit = |v: &[u8]| {
                let r = &mut out.records;
                r.keys.extend_from_slice(key);
                r.key_ends.push(r.keys.len() as u32);
                r.values.extend_from_slice(v);
                r.value_ends.push(r.values.len() as u32);
                r.timestamps.push(input.timestamps[i]);
                out.causes.push(row);
            };
            match cmd.split(':').next().unwrap_or("") {
                "ok" => emit(value),
                "sleep" => std::thread::sleep(LONG),
                "poll" => {
                    let p = wasip2::clocks::monotonic_clock::subscribe_duration(LONG.as_nanos() as u64);
                    wasip2::io::poll::poll(&[&p]);
                }
                "stdin" => {
                    let mut buf = Vec::new();
                    let n = std::io::stdin().read_to_end(&mut buf).map_err(|e| err(row, e.to_string()))?;
                    emit(n.to_string().as_bytes());
                }
                "touch-loop" => {
                    touch(row);
                    let mut x: u64 = 1;
                    loop {
                        x = std::hint::black_box(x.wrapping_mul(3));
                    }
                }
                "touch-oom" => {
                    touch(row);
                    let mut hog: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hog.push(vec![1u8; 1 << 20]);
                        std::hint::black_box(&hog);
                    }
                }
                "touch-sleep" => {
                    touch(row);
                    std::thread::sleep(LONG);
                }
                "timers" => {
                    for t in 0..arg(&cmd) {
                        timers::register_event_time_timer(row, t as i64);
                    }
                    emit(value);
                }
                "log" => runtime::log(runtime::Level::Info, &"x".repeat(arg(&cmd))),
                "print" => println!("{}", "y".repeat(arg(&cmd))),
                "logs" => {
                    let line = "z".repeat(1000);
                    for _ in 0..arg(&cmd) {
                        runtime::log(runtime::Level::Info, &line);
                    }
                }
                "error" => return Err(err(row, "e".repeat(arg(&cmd)))),
                "panic" => panic!("{}", "p".repeat(arg(&cmd))),
                "bad-cause" | "bad-ends" | "bad-output" => {
                    emit(value);
                    broken = Some((cmd.clone(), out.causes.len() - 1));
                }
                other => return Err(err(row, format!("unknown command '{other}'"))),
            }
        }
        ROW.set(None);
        match broken {
            Some((cmd, at)) if cmd == "bad-cause" => out.causes[at] = 99,
            // Its key ends before the previous row's (give that one a key).
            Some((cmd, at)) if cmd == "bad-ends" => out.records.key_ends[at] = 0,
            Some((_, at)) => {
                out.outputs = vec![0; out.causes.len()];
                out.outputs[at] = 7;
            }
            None => {}
        }
        Ok(out)
    }

    fn on_timer(_timers: types::FiredTimers) -> Result<types::Emitted, types::OperatorError> {
        let empty = types::Batch { keys: vec![], key_ends: vec![], values: vec![], value_ends: vec![], timestamps: vec![], headers: vec![] };
        Ok(types::Emitted { records: empty, outputs: vec![], causes: vec![] })
    }
}

fn err(row: u32, message: String) -> types::OperatorError {
    types::OperatorError { row: Some(row), message }
}

weir_sdk::wit::__export_wit!(Adversary with_types_in weir_sdk::wit);
