//! The records an untrusted producer (a guest's `emitted` reply) hands back
//! for one input batch: checked before anything routes them, so that no
//! reply, however malformed, can make the host index out of bounds, and each
//! problem is named with the input row whose output it is.

use crate::batch::{Origin, RecordBatch};

/// A producer's reply: a batch without origins, the output number of each
/// row (empty: all on the main output; `n > 0`: side output `n`), and the
/// input row each row is an output of.
#[derive(Clone, Debug, Default)]
pub struct Emitted {
    pub batch: RecordBatch,
    pub outputs: Vec<u32>,
    pub causes: Vec<u32>,
}

/// Why a reply was refused, and the origin of the input row concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadReply {
    pub message: String,
    pub at: Option<Origin>,
}

impl Emitted {
    /// Check the reply to an input whose rows came from `origins`, from a
    /// producer that declared `side_outputs` side outputs. On success the
    /// batch's origins are its causes' and every output number is in range.
    pub fn check(self, origins: &[Origin], side_outputs: usize) -> Result<(RecordBatch, Vec<u32>), BadReply> {
        let Emitted { mut batch, outputs, causes } = self;
        let n = batch.key_ends.len();
        let bad = |message: String, at: Option<Origin>| Err(BadReply { message, at });
        if causes.len() != n {
            return bad(format!("it emitted {n} records but {} causes", causes.len()), None);
        }
        batch.origins = Vec::with_capacity(n);
        for (i, &c) in causes.iter().enumerate() {
            match origins.get(c as usize) {
                Some(o) => batch.origins.push(*o),
                None => {
                    let key = key_of(&batch.keys, &batch.key_ends, i);
                    return bad(format!("its emitted record {i}{key} names input row {c} as its cause, of a {}-row input", origins.len()), None);
                }
            }
        }
        if let Err(m) = batch.validate() {
            // The input row whose output is broken, when one is.
            let at = first_bad_row(&batch).filter(|&i| i < n).map(|i| (causes[i], batch.origins[i]));
            let row = at.map_or(String::new(), |(c, _)| format!(" (an output of input row {c})"));
            return bad(format!("it emitted a malformed batch{row}: {m}"), at.map(|(_, o)| o));
        }
        if outputs.is_empty() {
            return Ok((batch, outputs));
        }
        if outputs.len() != n {
            return bad(format!("it emitted {n} records but {} output numbers", outputs.len()), None);
        }
        if let Some(i) = outputs.iter().position(|&o| o as usize > side_outputs) {
            return bad(
                format!(
                    "its emitted record {i} (an output of input row {}) goes to output {}, but it declared only {side_outputs} side outputs",
                    causes[i], outputs[i]
                ),
                Some(batch.origins[i]),
            );
        }
        Ok((batch, outputs))
    }
}

/// ` (key "…")` of emitted row `i`, if its key bytes are where `ends` says
/// (at most 64 bytes of it), for messages.
fn key_of(keys: &[u8], ends: &[u32], i: usize) -> String {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    match keys.get(start..ends[i] as usize) {
        Some(k) => format!(" (key {:?})", String::from_utf8_lossy(&k[..k.len().min(64)])),
        None => String::new(),
    }
}

/// The first row of a batch whose key or value end is out of order or past
/// the bytes (what [`RecordBatch::validate`] refuses row by row).
fn first_bad_row(b: &RecordBatch) -> Option<usize> {
    let bad = |ends: &[u32], len: usize| {
        let mut prev = 0;
        ends.iter().position(|&e| {
            let bad = e < prev || e as usize > len;
            prev = e;
            bad
        })
    };
    match (bad(&b.key_ends, b.keys.len()), bad(&b.value_ends, b.values.len())) {
        (Some(k), Some(v)) => Some(k.min(v)),
        (k, v) => k.or(v),
    }
}

/// Fuzzing entry (the `emitted` target of `fuzz/` and the bounded run of the
/// tests): a reply decoded from arbitrary bytes is either refused or safe to
/// read row by row.
#[doc(hidden)]
pub fn fuzz_emitted(data: &[u8]) {
    let mut r = Bytes(data);
    let rows = r.byte() as usize % 8;
    let inputs = r.byte() as usize % 8;
    let side_outputs = r.byte() as usize % 3;
    let mut batch = RecordBatch::default();
    let take = |r: &mut Bytes, len: usize| r.take(len % 64).to_vec();
    let klen = r.byte() as usize;
    batch.keys = take(&mut r, klen);
    let vlen = r.byte() as usize;
    batch.values = take(&mut r, vlen);
    batch.key_ends = (0..rows).map(|_| r.byte() as u32 % 70).collect();
    let vrows = if r.byte() % 8 == 0 { rows + 1 } else { rows };
    batch.value_ends = (0..vrows).map(|_| r.byte() as u32 % 70).collect();
    let trows = if r.byte() % 8 == 0 { rows.saturating_sub(1) } else { rows };
    batch.timestamps = (0..trows).map(|_| i64::from(r.byte()) - 128).collect();
    for _ in 0..r.byte() % 4 {
        let row = u32::from(r.byte() % 10);
        batch.headers.push(crate::Header { row, name: "h".into(), value: vec![r.byte()] });
    }
    let outputs = if r.byte() % 2 == 0 { Vec::new() } else { (0..rows + usize::from(r.byte() % 8 == 0)).map(|_| u32::from(r.byte() % 4)).collect() };
    let causes = (0..rows + usize::from(r.byte() % 8 == 0)).map(|_| u32::from(r.byte() % 10)).collect();
    let origins: Vec<Origin> = (0..inputs).map(|i| Origin::at(i as u64)).collect();
    if let Ok((b, outs)) = (Emitted { batch, outputs, causes }).check(&origins, side_outputs) {
        for i in 0..b.len() {
            let _ = (b.key(i), b.value(i), b.timestamps[i], b.origins[i], b.headers_of(i).count());
            if !outs.is_empty() {
                assert!(outs[i] as usize <= side_outputs);
            }
            let mut copy = RecordBatch::default();
            copy.push_row_from(&b, i, None);
        }
        let mut all = RecordBatch::default();
        all.append(&b);
        assert_eq!(all.len(), b.len());
    }
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(keys: &[u8], key_ends: Vec<u32>, causes: Vec<u32>, outputs: Vec<u32>) -> Emitted {
        let n = key_ends.len();
        let batch = RecordBatch {
            keys: keys.to_vec(),
            key_ends,
            values: vec![],
            value_ends: vec![0; n],
            timestamps: vec![0; n],
            headers: vec![],
            origins: vec![],
            kinds: vec![],
            born: Default::default(),
        };
        Emitted { batch, outputs, causes }
    }

    #[test]
    fn replies_are_checked_and_named() {
        let origins = [Origin::at(1), Origin::at(2)];
        let (b, _) = reply(b"ab", vec![1, 2], vec![1, 0], vec![]).check(&origins, 0).unwrap();
        assert_eq!(b.origins, [Origin::at(2), Origin::at(1)]);
        let e = reply(b"ab", vec![1, 2], vec![0], vec![]).check(&origins, 0).unwrap_err();
        assert_eq!(e.message, "it emitted 2 records but 1 causes");
        let e = reply(b"ab", vec![1, 2], vec![0, 5], vec![]).check(&origins, 0).unwrap_err();
        assert_eq!(e.message, "its emitted record 1 (key \"b\") names input row 5 as its cause, of a 2-row input");
        let e = reply(b"ab", vec![1, 9], vec![0, 1], vec![]).check(&origins, 0).unwrap_err();
        assert!(e.message.starts_with("it emitted a malformed batch (an output of input row 1): "), "{}", e.message);
        assert_eq!(e.at, Some(Origin::at(2)));
        let e = reply(b"ab", vec![1, 2], vec![0, 1], vec![0, 2]).check(&origins, 1).unwrap_err();
        assert_eq!(e.message, "its emitted record 1 (an output of input row 1) goes to output 2, but it declared only 1 side outputs");
        let e = reply(b"ab", vec![1, 2], vec![0, 1], vec![0]).check(&origins, 1).unwrap_err();
        assert_eq!(e.message, "it emitted 2 records but 1 output numbers");
    }

    #[test]
    fn arbitrary_replies_never_panic() {
        // A bounded run of the fuzz target over pseudo-random inputs (the
        // deep runs are `cargo fuzz run emitted`, see fuzz/).
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let data: Vec<u8> = (0..48)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fuzz_emitted(&data);
        }
    }
}
