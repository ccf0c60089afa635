//! Fraud detection: a 30-day rolling spend per customer, with an alert when a
//! transaction exceeds `k` times the customer's 30-day average.
//!
//! Input: JSON transactions `{"customer":"…","ts":MS,"amount":CENTS}` keyed by
//! customer (`key_by: $.customer`), with event time from `ts`. For each, the
//! customer's transactions of the 30 days before it (`[ts - 30d, ts)`) give a
//! count and a sum; when there are at least `config.min_history` of them
//! (default 3) and `amount * count > k * sum` (integers: `amount` above `k`
//! times the average; `config.k`, default 3), it emits
//! `{"customer":"…","ts":MS,"amount":A,"count_30d":N,"sum_30d":S,"k":K}`.
//!
//! State: the customer's transactions in a list state with a TTL of
//! `config.ttl_days` (default 31) days of processing time, so customers who
//! went quiet are dropped; and an event-time timer at `ts + 30d` per
//! transaction that removes what fell out of the 30 days.

use std::time::Duration;

use weir_sdk::prelude::*;

const DAY_MS: i64 = 86_400_000;
const WINDOW_MS: i64 = 30 * DAY_MS;

struct Fraud {
    /// (event time, amount) of the customer's recent transactions.
    txns: ListState<(i64, i64)>,
    k: i64,
    min_history: u64,
}

#[derive(serde::Deserialize)]
struct Txn {
    ts: i64,
    amount: i64,
}

impl Operator for Fraud {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        let ttl_days = ctx.config_parse::<u64>("ttl_days")?.unwrap_or(31);
        Ok(Fraud {
            txns: ctx.list_state(StateOptions::new("txns").ttl(Duration::from_secs(ttl_days * 86_400)))?,
            k: ctx.config_parse("k")?.unwrap_or(3),
            min_history: ctx.config_parse("min_history")?.unwrap_or(3),
        })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        let t: Txn = record.json()?;
        let recent: Vec<(i64, i64)> = self.txns.get(ctx)?;
        let (count, sum) = recent
            .iter()
            .filter(|(ts, _)| *ts >= t.ts - WINDOW_MS && *ts < t.ts)
            .fold((0u64, 0i64), |(n, s), (_, a)| (n + 1, s + a));
        if count >= self.min_history && i128::from(t.amount) * i128::from(count) > i128::from(self.k) * i128::from(sum) {
            let alert = serde_json::json!({
                "customer": record.key_str()?,
                "ts": t.ts,
                "amount": t.amount,
                "count_30d": count,
                "sum_30d": sum,
                "k": self.k,
            });
            ctx.emit_json(record.key(), &alert)?;
        }
        self.txns.add(ctx, &(t.ts, t.amount))?;
        ctx.register_event_time_timer(t.ts + WINDOW_MS);
        Ok(())
    }

    /// Drop the transactions that left the 30 days.
    fn on_timer(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Result<(), Error> {
        let keep: Vec<(i64, i64)> = self.txns.get(ctx)?.into_iter().filter(|(ts, _)| *ts > timer.time() - WINDOW_MS).collect();
        if keep.is_empty() {
            self.txns.clear(ctx);
        } else {
            self.txns.update(ctx, &keep)?;
        }
        Ok(())
    }
}

weir_sdk::export_operator!(Fraud);
