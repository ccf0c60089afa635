//! Test guest: passes records through until a record's value names a misdeed.
//! `config.fail_open` makes open fail; `config.print` prints it at open.

use weir_sdk::prelude::*;

struct Misbehave {
    state: ValueState<u64>,
}

impl Operator for Misbehave {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        if let Some(msg) = ctx.config("fail_open") {
            return Err(Error::msg(msg));
        }
        if let Some(msg) = ctx.config("print") {
            println!("{msg}");
            eprintln!("stderr: {msg}");
        }
        if ctx.config("read_file").is_some() {
            std::fs::read("/etc/passwd").map_err(|e| Error::msg(format!("no file access: {e}")))?;
        }
        if ctx.config("read_env").is_some() && std::env::vars().next().is_some() {
            return Err(Error::msg("environment is visible"));
        }
        Ok(Misbehave { state: ctx.value_state("n")? })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        match command(record.value()) {
            b"loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(3));
                }
            }
            b"oom" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            b"panic" => panic!("bad record {}", record.key_str()?),
            b"error" => return Err(Error::msg(format!("cannot handle record {}", record.key_str()?))),
            b"timer" => ctx.register_event_time_timer(record.timestamp().unwrap_or(0) + 10),
            // A row kind, which this 0.1.0 operator's world cannot carry.
            b"delete" => ctx.emit_kind(RowKind::Delete, record.key(), record.value()),
            b"count" => {
                let n = self.state.get(ctx)?.unwrap_or(0) + 1;
                self.state.set(ctx, &n)?;
                ctx.emit(record.key(), n.to_string());
            }
            b"reset" => {
                self.state.clear(ctx);
                ctx.emit(record.key(), "reset");
            }
            _ => {
                let n = self.state.get(ctx)?.unwrap_or(0) + 1;
                self.state.set(ctx, &n)?;
                ctx.emit(record.key(), record.value());
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Result<(), Error> {
        let n = self.state.get(ctx)?.unwrap_or(0);
        ctx.emit(timer.key(), format!("timer {} n={n}", timer.time()));
        Ok(())
    }
}

weir_sdk::export_operator!(Misbehave);

/// The command: the value, or a JSON value's `"cmd"` field.
fn command(value: &[u8]) -> &[u8] {
    const CMD: &[u8] = b"\"cmd\":\"";
    let Some(at) = value.windows(CMD.len()).position(|w| w == CMD).filter(|_| value.first() == Some(&b'{')) else {
        return value;
    };
    let rest = &value[at + CMD.len()..];
    &rest[..rest.iter().position(|&b| b == b'"').unwrap_or(rest.len())]
}
