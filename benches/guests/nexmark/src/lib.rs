//! Nexmark queries q0–q3, q5, q7 and q8 as one Weir operator; `config.query`
//! picks one (q5 and q7 are two stages each, so two operators in a row).
//!
//! Input: one JSON event per record, in the schema of the Flink Nexmark
//! benchmark (`{"event_type":0|1|2,"person":{…},"auction":{…},"bid":{…}}`,
//! `dateTime` in epoch milliseconds); for q3 the record key is the person id
//! of persons and the seller of auctions. Outputs are JSON objects:
//!
//! - q0 (pass-through): `SELECT auction, bidder, price, dateTime, extra FROM bid`
//! - q1 (currency): the same with `price * 0.908`
//! - q2 (filter): `SELECT auction, price FROM bid WHERE auction % 123 = 0`
//! - q3 (join, keyed state): `SELECT P.name, P.city, P.state, A.id FROM auction A
//!   JOIN person P ON A.seller = P.id WHERE A.category = 10 AND P.state IN
//!   ('OR', 'ID', 'CA')`, as a regular join: the person is kept, auctions that
//!   come before their seller wait in a list.
//!
//! The windowed queries use event time (the record timestamps, which the
//! harness sets from `dateTime`), keyed state and event-time timers: a window
//! closes when the watermark passes its last millisecond (`end - 1`), as in
//! Flink; records of windows already closed are dropped as late. Windows are
//! aligned to the epoch.
//!
//! - q5 (hot items), sliding windows of 10 s every 2 s over bids: the
//!   auctions with the most bids per window (ties: all), as
//!   `{"auction","num","window_end"}`. Stage `q5-count`, keyed by auction:
//!   the bid count of each of the auction's open windows; when a window
//!   closes it emits `{"auction","num"}` keyed by the window end. Stage `q5`,
//!   keyed by window end: keeps the greatest count and its auctions, emits
//!   them when the window closes.
//! - q7 (highest bid), tumbling windows of 10 s over bids: the bids whose
//!   price is the window's greatest, as q0's fields. Stage `q7-local`, keyed
//!   by auction: the auction's highest bids per window, emitted keyed by the
//!   window end when it closes; stage `q7`, keyed by window end: the highest
//!   of those.
//! - q8 (monitor new users), tumbling windows of 10 s: persons who created an
//!   auction in the window they registered in, `{"id","name","starttime"}`
//!   once per person and window; keyed by person id / auction seller.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::prelude::*;

#[derive(Deserialize)]
struct Event<'a> {
    event_type: u8,
    #[serde(borrow)]
    person: Option<Person<'a>>,
    auction: Option<Auction>,
    #[serde(borrow)]
    bid: Option<Bid<'a>>,
}

#[derive(Deserialize)]
struct Person<'a> {
    id: u64,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    city: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Auction {
    id: u64,
    category: u64,
}

#[derive(Deserialize, Serialize)]
struct Bid<'a> {
    auction: u64,
    bidder: u64,
    price: u64,
    #[serde(rename = "dateTime")]
    date_time: u64,
    #[serde(borrow)]
    extra: Cow<'a, str>,
}

#[derive(Serialize)]
struct Q1<'a> {
    auction: u64,
    bidder: u64,
    price: f64,
    #[serde(rename = "dateTime")]
    date_time: u64,
    extra: &'a str,
}

#[derive(Serialize, Deserialize)]
struct Seller {
    name: String,
    city: String,
    state: String,
}

#[derive(Serialize)]
struct Q3<'a> {
    name: &'a str,
    city: &'a str,
    state: &'a str,
    id: u64,
}

enum Query {
    Q0,
    Q1,
    Q2,
    Q3 { sellers: ValueState<Seller>, waiting: ListState<u64> },
    /// Per auction: bid count by window end.
    Q5Count { counts: ValueState<BTreeMap<i64, u64>> },
    /// Per window end: the greatest count and its auctions.
    Q5 { best: ValueState<(u64, Vec<u64>)> },
    /// Per auction: by window end, the highest price and the bids (output
    /// JSON) at that price.
    Q7Local { best: ValueState<BTreeMap<i64, (u64, Vec<String>)>> },
    /// Per window end: the highest price and its bids (output JSON).
    Q7 { best: ValueState<(u64, Vec<String>)> },
    /// Per person id / seller, by window start: the person (id, name) if
    /// they registered in it, and whether they created an auction in it.
    Q8 { windows: ValueState<BTreeMap<i64, NewUser>> },
}

/// q8: a person id's window.
#[derive(Serialize, Deserialize, Default)]
struct NewUser {
    /// The person (id, name), if they registered in the window.
    person: Option<(u64, String)>,
    /// Whether they created an auction in the window.
    auction: bool,
}

/// q7 and q8: tumbling windows of 10 s.
const TUMBLE_MS: i64 = 10_000;
/// q5: sliding windows of 10 s every 2 s.
const HOP_SIZE_MS: i64 = 10_000;
const HOP_SLIDE_MS: i64 = 2_000;

#[derive(Serialize, Deserialize)]
struct Q5Count {
    auction: u64,
    num: u64,
}

#[derive(Serialize)]
struct Q5 {
    auction: u64,
    num: u64,
    window_end: i64,
}

#[derive(Deserialize)]
struct Price {
    price: u64,
}

#[derive(Serialize)]
struct Q8<'a> {
    id: u64,
    name: &'a str,
    starttime: i64,
}

fn event_time(record: &Record<'_>) -> Result<i64, Error> {
    record.timestamp().ok_or_else(|| Error::msg("record without event time (the source needs timestamps)"))
}

/// A numeric key: the window end of a stage-two record, the auction of a
/// `q5-count` timer.
fn key_number(key: &[u8]) -> Result<i64, Error> {
    std::str::from_utf8(key).ok().and_then(|k| k.parse().ok()).ok_or_else(|| Error::msg("key is not a number"))
}

struct Nexmark {
    query: Query,
    out: Vec<u8>,
}

impl Operator for Nexmark {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        let query = match ctx.config("query") {
            Some("q0") => Query::Q0,
            Some("q1") => Query::Q1,
            Some("q2") => Query::Q2,
            Some("q3") => Query::Q3 {
                sellers: ctx.value_state(StateOptions::new("sellers"))?,
                waiting: ctx.list_state(StateOptions::new("waiting"))?,
            },
            Some("q5-count") => Query::Q5Count { counts: ctx.value_state(StateOptions::new("counts"))? },
            Some("q5") => Query::Q5 { best: ctx.value_state(StateOptions::new("best"))? },
            Some("q7-local") => Query::Q7Local { best: ctx.value_state(StateOptions::new("best"))? },
            Some("q7") => Query::Q7 { best: ctx.value_state(StateOptions::new("best"))? },
            Some("q8") => Query::Q8 { windows: ctx.value_state(StateOptions::new("windows"))? },
            other => {
                return Err(Error::msg(format!(
                    "config.query: {other:?}; expected q0, q1, q2, q3, q5-count, q5, q7-local, q7 or q8"
                )))
            }
        };
        Ok(Nexmark { query, out: Vec::with_capacity(256) })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        // The second stages read the first stages' outputs, not events.
        match &self.query {
            Query::Q5 { best } => {
                let c: Q5Count = record.json()?;
                let mut b = best.get(ctx)?.unwrap_or((0, Vec::new()));
                if b.1.is_empty() {
                    ctx.register_event_time_timer(key_number(record.key())? - 1);
                }
                if c.num > b.0 {
                    b = (c.num, vec![c.auction]);
                } else if c.num == b.0 {
                    b.1.push(c.auction);
                }
                return best.set(ctx, &b);
            }
            Query::Q7 { best } => {
                let p: Price = record.json()?;
                let mut b = best.get(ctx)?.unwrap_or((0, Vec::new()));
                if b.1.is_empty() {
                    ctx.register_event_time_timer(key_number(record.key())? - 1);
                }
                if p.price > b.0 || b.1.is_empty() {
                    b = (p.price, vec![record.value_str()?.to_owned()]);
                } else if p.price == b.0 {
                    b.1.push(record.value_str()?.to_owned());
                }
                return best.set(ctx, &b);
            }
            _ => {}
        }
        let e: Event = serde_json::from_slice(record.value())?;
        self.out.clear();
        match (&self.query, e.event_type) {
            (Query::Q0, 2) => serde_json::to_writer(&mut self.out, &e.bid)?,
            (Query::Q1, 2) => {
                let b = e.bid.ok_or_else(|| Error::msg("event_type 2 without bid"))?;
                let q = Q1 { auction: b.auction, bidder: b.bidder, price: b.price as f64 * 0.908, date_time: b.date_time, extra: &b.extra };
                serde_json::to_writer(&mut self.out, &q)?;
            }
            (Query::Q2, 2) => {
                let b = e.bid.ok_or_else(|| Error::msg("event_type 2 without bid"))?;
                if b.auction % 123 != 0 {
                    return Ok(());
                }
                serde_json::to_writer(&mut self.out, &serde_json::json!({ "auction": b.auction, "price": b.price }))?;
            }
            (Query::Q3 { sellers, waiting }, 0) => {
                let p = e.person.ok_or_else(|| Error::msg("event_type 0 without person"))?;
                if !matches!(&*p.state, "OR" | "ID" | "CA") {
                    return Ok(());
                }
                for id in waiting.get(ctx)? {
                    self.out.clear();
                    serde_json::to_writer(&mut self.out, &Q3 { name: &p.name, city: &p.city, state: &p.state, id })?;
                    ctx.emit(record.key(), &self.out);
                }
                waiting.clear(ctx);
                sellers.set(ctx, &Seller { name: p.name.into_owned(), city: p.city.into_owned(), state: p.state.into_owned() })?;
                return Ok(());
            }
            (Query::Q3 { sellers, waiting }, 1) => {
                let a = e.auction.ok_or_else(|| Error::msg("event_type 1 without auction"))?;
                if a.category != 10 {
                    return Ok(());
                }
                match sellers.get(ctx)? {
                    Some(s) => serde_json::to_writer(&mut self.out, &Q3 { name: &s.name, city: &s.city, state: &s.state, id: a.id })?,
                    None => {
                        waiting.add(ctx, &a.id)?;
                        return Ok(());
                    }
                }
            }
            (Query::Q5Count { counts }, 2) => {
                let t = event_time(&record)?;
                let watermark = ctx.current_watermark();
                let mut c = counts.get(ctx)?.unwrap_or_default();
                // The windows [end - 10 s, end) holding t: the first end after t
                // and the next four.
                let first = (t.div_euclid(HOP_SLIDE_MS) + 1) * HOP_SLIDE_MS;
                for end in (first..first + HOP_SIZE_MS).step_by(HOP_SLIDE_MS as usize) {
                    if end - 1 <= watermark {
                        continue; // late: the window has closed
                    }
                    let n = c.entry(end).or_insert(0);
                    if *n == 0 {
                        ctx.register_event_time_timer(end - 1);
                    }
                    *n += 1;
                }
                return counts.set(ctx, &c);
            }
            (Query::Q7Local { best }, 2) => {
                let t = event_time(&record)?;
                let end = t.div_euclid(TUMBLE_MS) * TUMBLE_MS + TUMBLE_MS;
                if end - 1 <= ctx.current_watermark() {
                    return Ok(()); // late
                }
                let b = e.bid.ok_or_else(|| Error::msg("event_type 2 without bid"))?;
                let mut all = best.get(ctx)?.unwrap_or_default();
                let w = all.entry(end).or_insert_with(|| {
                    ctx.register_event_time_timer(end - 1);
                    (0, Vec::new())
                });
                if b.price > w.0 || w.1.is_empty() {
                    *w = (b.price, vec![serde_json::to_string(&b)?]);
                } else if b.price == w.0 {
                    w.1.push(serde_json::to_string(&b)?);
                } else {
                    return Ok(());
                }
                return best.set(ctx, &all);
            }
            (Query::Q8 { windows }, 0 | 1) => {
                let t = event_time(&record)?;
                let start = t.div_euclid(TUMBLE_MS) * TUMBLE_MS;
                if start + TUMBLE_MS - 1 <= ctx.current_watermark() {
                    return Ok(()); // late
                }
                let mut all = windows.get(ctx)?.unwrap_or_default();
                let w = all.entry(start).or_insert_with(|| {
                    ctx.register_event_time_timer(start + TUMBLE_MS - 1);
                    NewUser::default()
                });
                match (e.person, e.auction) {
                    (Some(p), _) => w.person = Some((p.id, p.name.into_owned())),
                    (None, Some(_)) => w.auction = true,
                    (None, None) => return Err(Error::msg("event without person or auction")),
                }
                return windows.set(ctx, &all);
            }
            _ => return Ok(()),
        }
        ctx.emit(record.key(), &self.out);
        Ok(())
    }

    /// A window closed (the timer is at its last millisecond).
    fn on_timer(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Result<(), Error> {
        let end = timer.time() + 1;
        match &self.query {
            Query::Q5Count { counts } => {
                let mut c = counts.get(ctx)?.unwrap_or_default();
                if let Some(num) = c.remove(&end) {
                    let auction = key_number(timer.key())? as u64;
                    ctx.emit_json(end.to_string(), &Q5Count { auction, num })?;
                }
                if c.is_empty() { counts.clear(ctx) } else { counts.set(ctx, &c)? }
            }
            Query::Q5 { best } => {
                if let Some((num, auctions)) = best.get(ctx)? {
                    for auction in auctions {
                        ctx.emit_json(timer.key(), &Q5 { auction, num, window_end: end })?;
                    }
                }
                best.clear(ctx);
            }
            Query::Q7Local { best } => {
                let mut all = best.get(ctx)?.unwrap_or_default();
                if let Some((_, bids)) = all.remove(&end) {
                    let key = end.to_string();
                    for b in bids {
                        ctx.emit(&key, b);
                    }
                }
                if all.is_empty() { best.clear(ctx) } else { best.set(ctx, &all)? }
            }
            Query::Q7 { best } => {
                if let Some((_, bids)) = best.get(ctx)? {
                    for b in bids {
                        ctx.emit(timer.key(), b);
                    }
                }
                best.clear(ctx);
            }
            Query::Q8 { windows } => {
                let mut all = windows.get(ctx)?.unwrap_or_default();
                let start = end - TUMBLE_MS;
                if let Some(NewUser { person: Some((id, name)), auction: true }) = all.remove(&start) {
                    ctx.emit_json(timer.key(), &Q8 { id, name: &name, starttime: start })?;
                }
                if all.is_empty() { windows.clear(ctx) } else { windows.set(ctx, &all)? }
            }
            _ => {}
        }
        Ok(())
    }
}

weir_sdk::export_operator!(Nexmark);
