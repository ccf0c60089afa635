//! Nexmark queries q0–q3 as one Weir operator; `config.query` picks one.
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

use std::borrow::Cow;

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
            other => return Err(Error::msg(format!("config.query: {other:?}; expected q0, q1, q2 or q3"))),
        };
        Ok(Nexmark { query, out: Vec::with_capacity(256) })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
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
            _ => return Ok(()),
        }
        ctx.emit(record.key(), &self.out);
        Ok(())
    }
}

weir_sdk::export_operator!(Nexmark);
