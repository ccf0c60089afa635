//! Word count, in two stages of one plugin (`config.stage`):
//!
//! * `tokenize`: splits each record's value into words and emits one record per
//!   word, keyed by the word. A word is a maximal run of ASCII letters and
//!   digits, lowercased; everything else separates words.
//! * `count` (the default): counts records per key in a value state and emits,
//!   for every input, `{"word":"<key>","count":N}` with N the running count.
//!
//! A pipeline runs `tokenize`, then `key_by: key`, then `count`.

use weir_sdk::prelude::*;

enum WordCount {
    Tokenize,
    Count { counts: ValueState<u64> },
}

impl Operator for WordCount {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        match ctx.config("stage").unwrap_or("count") {
            "tokenize" => Ok(WordCount::Tokenize),
            "count" => Ok(WordCount::Count { counts: ctx.value_state("count")? }),
            other => Err(Error::msg(format!("config 'stage' must be 'tokenize' or 'count', not {other:?}"))),
        }
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        match self {
            WordCount::Tokenize => {
                let mut word = Vec::new();
                for &b in record.value().iter().chain(std::iter::once(&b' ')) {
                    if b.is_ascii_alphanumeric() {
                        word.push(b.to_ascii_lowercase());
                    } else if !word.is_empty() {
                        ctx.emit(&word, b"");
                        word.clear();
                    }
                }
            }
            WordCount::Count { counts } => {
                let n = counts.get(ctx)?.unwrap_or(0) + 1;
                counts.set(ctx, &n)?;
                // Keys are words made of [a-z0-9], so they need no JSON escaping,
                // but the count stage may be fed other keys: escape generally.
                let word = serde_json_escape(record.key_str()?);
                ctx.emit(record.key(), format!("{{\"word\":\"{word}\",\"count\":{n}}}"));
            }
        }
        Ok(())
    }
}

fn serde_json_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

weir_sdk::export_operator!(WordCount);
