//! The script as text, before sqlparser reads it: the places where
//! Weir's SQL (Flink's) is not what sqlparser parses, rewritten in place with
//! spaces so that every position sqlparser reports is still the position in
//! the file:
//!
//! * `WATERMARK FOR col AS col - INTERVAL '5' SECOND` in a CREATE TABLE's
//!   column list (taken out, with the comma before it, and kept aside);
//! * window table functions, `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...))`,
//!   which become the table function call `TUMBLE(t, DESCRIPTOR(ts), ...)`
//!   that the relation planner of `tvf.rs` plans (`TABLE t PARTITION BY a,
//!   b` in it becoming `t ,PART_BY(a,b)`);
//! * quoted option names, `WITH ('connector' = 'kafka')` and `SET
//!   'parallelism' = '2'`, which become quoted identifiers (`"connector"`).
//!
//! * `versioned FOR SYSTEM_TIME AS OF o.ts` (an event-time temporal join's
//!   versioned side): the clause taken out and kept aside.
//!
//! Also intervals as milliseconds, for both; and `/*+ STATE_TTL(...) */`
//! hints read out of their comments (which sqlparser skips).

use crate::error::sqlparser::ast::{DateTimeField, Expr, Value};
use crate::error::sqlparser::dialect::GenericDialect;
use crate::error::sqlparser::parser::Parser;
use crate::error::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};
use crate::error::{Pos, SqlError};

/// A `WATERMARK FOR` clause: its column, how far the watermark trails the
/// greatest time seen, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watermark {
    pub column: String,
    pub delay_ms: i64,
    pub at: Pos,
}

/// A `CREATE FUNCTION name AS 'plugin' [LANGUAGE WASM]` statement (Flink's
/// form, which sqlparser does not read): taken out of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDecl {
    pub name: String,
    /// The plugin, and after `#` the component's function if not `name`.
    pub reference: String,
    pub if_not_exists: bool,
    pub at: Pos,
}

/// A `/*+ STATE_TTL('name' = '1 d', ...) */` hint (Flink's): how long the
/// state of each named table or alias lasts in its statement's joins and
/// aggregations; and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTtlHint {
    pub ttl_ms: Vec<(String, u64)>,
    pub at: Pos,
}

/// `versioned FOR SYSTEM_TIME AS OF probe.time [AS alias]` (an event-time
/// temporal join's right side), taken out of the text: the versioned table,
/// its alias, the probe side's time column, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsOf {
    pub table: String,
    pub alias: Option<String>,
    /// The time column, and the table or alias it is qualified with.
    pub column: String,
    pub qualifier: Option<String>,
    pub at: Pos,
}

/// The text sqlparser reads, and what was taken out of it.
#[derive(Debug)]
pub struct Prepared {
    pub text: String,
    pub watermarks: Vec<Watermark>,
    pub functions: Vec<FunctionDecl>,
    pub hints: Vec<StateTtlHint>,
    pub as_of: Vec<AsOf>,
}

/// The hints of a `/*+ ... */` comment (its text after the `+`) at `at`:
/// `STATE_TTL('name' = 'duration', ...)`, one or more.
fn hints(text: &str, at: Pos, file: &str) -> Result<Vec<StateTtlHint>, SqlError> {
    let err = |m: String| SqlError::at(file, at, m);
    let tokens = Tokenizer::new(&GenericDialect {}, text).tokenize().map_err(|e| err(format!("cannot read the hint: {}", e.message)))?;
    let toks: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let name = word(toks[i]).ok_or_else(|| err(format!("a hint is a name and its options in parentheses, not {}", toks[i])))?;
        if !name.eq_ignore_ascii_case("STATE_TTL") {
            return Err(err(format!("the hint {name} is not supported (STATE_TTL('table or alias' = '1 h', ...))")));
        }
        if toks.get(i + 1) != Some(&&Token::LParen) {
            return Err(err("STATE_TTL needs its tables in parentheses: STATE_TTL('orders' = '1 d')".into()));
        }
        let mut ttl_ms = Vec::new();
        let mut j = i + 2;
        loop {
            match (toks.get(j), toks.get(j + 1), toks.get(j + 2)) {
                (Some(Token::SingleQuotedString(t)), Some(Token::Eq), Some(Token::SingleQuotedString(d))) => {
                    let ms = duration_ms(d).ok_or_else(|| err(format!("STATE_TTL('{t}' = '{d}'): a duration is a number and a unit ('1 h', '30 min', '10 s', '2 d')")))?;
                    ttl_ms.push((t.to_ascii_lowercase(), ms));
                    j += 3;
                }
                _ => return Err(err("STATE_TTL takes 'table or alias' = 'duration' pairs: STATE_TTL('o' = '1 d', 'p' = '12 h')".into())),
            }
            match toks.get(j) {
                Some(Token::Comma) => j += 1,
                Some(Token::RParen) => break,
                _ => return Err(err("STATE_TTL(...) needs a comma between its pairs and a closing parenthesis".into())),
            }
        }
        out.push(StateTtlHint { ttl_ms, at });
        i = j + 1;
        if toks.get(i) == Some(&&Token::Comma) {
            i += 1;
        }
    }
    Ok(out)
}

/// `CREATE [TEMPORARY] [SYSTEM] FUNCTION [IF NOT EXISTS] name AS 'plugin'
/// [LANGUAGE WASM]` at `toks[i]`: the declaration and the index of its last
/// token.
fn function_decl(toks: &[&TokenWithSpan], i: usize, file: &str) -> Result<Option<(FunctionDecl, usize)>, SqlError> {
    if !is_keyword(&toks[i].token, "CREATE") || (i > 0 && toks[i - 1].token != Token::SemiColon) {
        return Ok(None);
    }
    let mut j = i + 1;
    for k in ["TEMPORARY", "SYSTEM"] {
        if toks.get(j).is_some_and(|t| is_keyword(&t.token, k)) {
            j += 1;
        }
    }
    if !toks.get(j).is_some_and(|t| is_keyword(&t.token, "FUNCTION")) {
        return Ok(None);
    }
    let at = (toks[i].span.start.line, toks[i].span.start.column);
    let usage = "CREATE FUNCTION name AS 'plugin.wasm' (or 'plugin@version' on a node, and 'plugin#function' for a function of another name)";
    let err = |m: &str| SqlError::at(file, at, format!("{m}: {usage}"));
    j += 1;
    let if_not_exists = ["IF", "NOT", "EXISTS"].iter().enumerate().all(|(k, w)| toks.get(j + k).is_some_and(|t| is_keyword(&t.token, w)));
    if if_not_exists {
        j += 3;
    }
    let Some(name) = toks.get(j).and_then(|t| word(&t.token)).map(str::to_string) else { return Err(err("CREATE FUNCTION needs a name")) };
    if !toks.get(j + 1).is_some_and(|t| is_keyword(&t.token, "AS")) {
        return Err(err(&format!("CREATE FUNCTION {name} needs AS and its plugin")));
    }
    let Some(Token::SingleQuotedString(reference)) = toks.get(j + 2).map(|t| &t.token) else {
        return Err(err(&format!("CREATE FUNCTION {name} AS takes the plugin as a string")));
    };
    let mut end = j + 2;
    if toks.get(end + 1).is_some_and(|t| is_keyword(&t.token, "LANGUAGE")) {
        match toks.get(end + 2).and_then(|t| word(&t.token)) {
            Some(l) if l.eq_ignore_ascii_case("WASM") => end += 2,
            Some(l) => return Err(SqlError::at(file, at, format!("CREATE FUNCTION {name}: LANGUAGE {l}: functions are WebAssembly components, in any language (LANGUAGE WASM, or leave it out)"))),
            None => return Err(err("LANGUAGE needs a name")),
        }
    }
    if !toks.get(end + 1).is_none_or(|t| t.token == Token::SemiColon || t.token == Token::EOF) {
        return Err(err(&format!("CREATE FUNCTION {name}: unexpected {} after the plugin", toks[end + 1].token)));
    }
    Ok(Some((FunctionDecl { name, reference: reference.clone(), if_not_exists, at }, end)))
}

/// The window table functions.
pub const WINDOW_FUNCTIONS: [&str; 4] = ["TUMBLE", "HOP", "CUMULATE", "SESSION"];

fn word(t: &Token) -> Option<&str> {
    match t {
        Token::Word(w) => Some(w.value.as_str()),
        _ => None,
    }
}

fn is_keyword(t: &Token, k: &str) -> bool {
    word(t).is_some_and(|w| w.eq_ignore_ascii_case(k))
}

/// Byte offsets of line starts, to turn locations into offsets.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The byte offset of a (1-based, in characters) location.
    fn offset(&self, l: Location) -> usize {
        let start = self.starts.get(l.line.saturating_sub(1) as usize).copied().unwrap_or(self.text.len());
        let line = &self.text[start..];
        start + line.char_indices().nth(l.column.saturating_sub(1) as usize).map_or(line.len(), |(i, _)| i)
    }
}

/// Replace the bytes of `range` with spaces (keeping line breaks).
fn blank(out: &mut [u8], range: std::ops::Range<usize>) {
    for b in &mut out[range] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

/// Read the script: take out WATERMARK clauses, turn window table functions
/// into table function calls.
pub fn prepare(text: &str, file: &str) -> Result<Prepared, SqlError> {
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(file, (e.location.line, e.location.column), format!("cannot read the SQL: {}", e.message)))?;
    let mut hinted = Vec::new();
    for t in &tokens {
        if let Token::Whitespace(Whitespace::MultiLineComment(c)) = &t.token
            && let Some(h) = c.strip_prefix('+')
        {
            hinted.extend(hints(h, (t.span.start.line, t.span.start.column), file)?);
        }
    }
    let toks: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect();
    let lines = Lines::new(text);
    let mut out = text.as_bytes().to_vec();
    let mut watermarks = Vec::new();
    let mut functions = Vec::new();
    let mut as_of = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Some((decl, end)) = function_decl(&toks, i, file)? {
            blank(&mut out, lines.offset(toks[i].span.start)..lines.offset(toks[end].span.end));
            functions.push(decl);
            i = end + 1;
            continue;
        }
        let t = &toks[i].token;
        // table FOR SYSTEM_TIME AS OF o.ts [AS] [alias]
        if is_keyword(t, "FOR") && toks.get(i + 1).and_then(|n| word(&n.token)).is_some_and(|w| w.eq_ignore_ascii_case("SYSTEM_TIME")) {
            let at = (toks[i].span.start.line, toks[i].span.start.column);
            let err = |m: &str| SqlError::at(file, at, m);
            let usage = "FOR SYSTEM_TIME AS OF needs the probe side's time column: versioned FOR SYSTEM_TIME AS OF o.order_time AS r";
            if !(toks.get(i + 2).is_some_and(|n| is_keyword(&n.token, "AS")) && toks.get(i + 3).is_some_and(|n| is_keyword(&n.token, "OF"))) {
                return Err(err(usage));
            }
            let table = i.checked_sub(1).and_then(|p| word(&toks[p].token)).ok_or_else(|| err("FOR SYSTEM_TIME AS OF follows a table's name"))?.to_string();
            let mut parts = vec![toks.get(i + 4).and_then(|n| word(&n.token)).ok_or_else(|| err(usage))?.to_string()];
            let mut j = i + 5;
            while toks.get(j).is_some_and(|n| n.token == Token::Period) {
                parts.push(toks.get(j + 1).and_then(|n| word(&n.token)).ok_or_else(|| err(usage))?.to_string());
                j += 2;
            }
            if parts.len() > 2 {
                return Err(err(usage));
            }
            let column = parts.pop().expect("one at least");
            let end = lines.offset(toks[j - 1].span.end);
            // Its alias, after it.
            let alias = match toks.get(j) {
                Some(n) if is_keyword(&n.token, "AS") => toks.get(j + 1).and_then(|n| word(&n.token)).map(str::to_string),
                Some(n) => word(&n.token)
                    .filter(|w| !["ON", "JOIN", "WHERE", "LEFT", "INNER", "GROUP", "USING", "CROSS", "FULL", "RIGHT"].iter().any(|k| k.eq_ignore_ascii_case(w)))
                    .map(str::to_string),
                None => None,
            };
            blank(&mut out, lines.offset(toks[i].span.start)..end);
            as_of.push(AsOf { table, alias, column, qualifier: parts.pop(), at });
            i = j;
            continue;
        }
        if is_keyword(t, "WATERMARK") && toks.get(i + 1).is_some_and(|n| is_keyword(&n.token, "FOR")) {
            let at = (toks[i].span.start.line, toks[i].span.start.column);
            let column = toks.get(i + 2).and_then(|n| word(&n.token)).map(str::to_string).ok_or_else(|| {
                SqlError::at(file, at, "WATERMARK FOR needs a column: WATERMARK FOR ts AS ts - INTERVAL '5' SECOND")
            })?;
            if !toks.get(i + 3).is_some_and(|n| is_keyword(&n.token, "AS")) {
                return Err(SqlError::at(file, at, "WATERMARK FOR ts needs AS and an expression: WATERMARK FOR ts AS ts - INTERVAL '5' SECOND"));
            }
            // The expression runs to the comma or closing parenthesis of the column list.
            let (mut depth, mut j) = (0i32, i + 4);
            while j < toks.len() {
                match toks[j].token {
                    Token::LParen => depth += 1,
                    Token::RParen if depth == 0 => break,
                    Token::RParen => depth -= 1,
                    Token::Comma if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            if j == i + 4 || j == toks.len() {
                return Err(SqlError::at(file, at, "WATERMARK FOR ts AS needs an expression: ts - INTERVAL '5' SECOND"));
            }
            let (from, to) = (lines.offset(toks[i + 4].span.start), lines.offset(toks[j - 1].span.end));
            let delay_ms = watermark_delay(&text[from..to], &column).map_err(|m| SqlError::at(file, at, m))?;
            watermarks.push(Watermark { column, delay_ms, at });
            // Out with it, and with the comma before it.
            let mut start = lines.offset(toks[i].span.start);
            if i > 0 && toks[i - 1].token == Token::Comma {
                start = lines.offset(toks[i - 1].span.start);
            }
            blank(&mut out, start..to);
            i = j;
            continue;
        }
        // 'name' = in WITH (...) or after SET: a quoted identifier.
        if let Token::SingleQuotedString(_) = t
            && toks.get(i + 1).is_some_and(|n| n.token == Token::Eq)
            && (in_with(&toks, i) || (i > 0 && is_keyword(&toks[i - 1].token, "SET")))
        {
            let (a, b) = (lines.offset(toks[i].span.start), lines.offset(toks[i].span.end));
            if b > a + 1 && out[a] == b'\'' && out[b - 1] == b'\'' {
                out[a] = b'"';
                out[b - 1] = b'"';
            }
        }
        // TABLE ( TUMBLE ( TABLE name ... ) )
        if is_keyword(t, "TABLE")
            && toks.get(i + 1).is_some_and(|n| n.token == Token::LParen)
            && toks.get(i + 2).and_then(|n| word(&n.token)).is_some_and(|w| WINDOW_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(w)))
            && toks.get(i + 3).is_some_and(|n| n.token == Token::LParen)
        {
            let (mut depth, mut close) = (0i32, None);
            for (j, tok) in toks.iter().enumerate().skip(i + 1) {
                match tok.token {
                    Token::LParen => depth += 1,
                    Token::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(close) = close else {
                let at = (toks[i].span.start.line, toks[i].span.start.column);
                return Err(SqlError::at(file, at, "this TABLE( has no closing parenthesis"));
            };
            blank(&mut out, lines.offset(toks[i].span.start)..lines.offset(toks[i + 1].span.end));
            if toks.get(i + 4).is_some_and(|n| is_keyword(&n.token, "TABLE")) {
                blank(&mut out, lines.offset(toks[i + 4].span.start)..lines.offset(toks[i + 4].span.end));
                // TABLE t PARTITION BY a, b, DESCRIPTOR(...) -> t ,PART_BY(a,b) , DESCRIPTOR(...)
                if toks.get(i + 6).is_some_and(|n| is_keyword(&n.token, "PARTITION")) && toks.get(i + 7).is_some_and(|n| is_keyword(&n.token, "BY")) {
                    let mut cols = Vec::new();
                    let mut j = i + 8;
                    while toks.get(j).and_then(|n| word(&n.token)).is_some() {
                        cols.push(toks[j].token.to_string());
                        if toks.get(j + 1).is_some_and(|n| n.token == Token::Comma) && toks.get(j + 2).is_some_and(|n| !is_keyword(&n.token, "DESCRIPTOR")) {
                            j += 2;
                        } else {
                            break;
                        }
                    }
                    if cols.is_empty() {
                        let at = (toks[i + 6].span.start.line, toks[i + 6].span.start.column);
                        return Err(SqlError::at(file, at, "PARTITION BY needs columns: TABLE t PARTITION BY a, DESCRIPTOR(ts), ..."));
                    }
                    let (from, to) = (lines.offset(toks[i + 6].span.start), lines.offset(toks[j].span.end));
                    let text = format!(",PART_BY({})", cols.join(","));
                    if text.len() <= to - from {
                        blank(&mut out, from..to);
                        out[from..from + text.len()].copy_from_slice(text.as_bytes());
                    }
                }
            }
            blank(&mut out, lines.offset(toks[close].span.start)..lines.offset(toks[close].span.end));
            i += 2;
            continue;
        }
        i += 1;
    }
    let text = String::from_utf8(out).expect("ASCII spaces replace whole characters");
    Ok(Prepared { text, watermarks, functions, hints: hinted, as_of })
}

/// Whether token `i` is inside the parentheses of a `WITH (` (back to the
/// nearest unclosed parenthesis).
fn in_with(toks: &[&TokenWithSpan], i: usize) -> bool {
    let mut depth = 0i32;
    for j in (0..i).rev() {
        match toks[j].token {
            Token::RParen => depth += 1,
            Token::LParen if depth > 0 => depth -= 1,
            Token::LParen => return j > 0 && is_keyword(&toks[j - 1].token, "WITH"),
            Token::SemiColon => return false,
            _ => {}
        }
    }
    false
}

/// `col` or `col - INTERVAL ...`: how far the watermark trails `col`.
fn watermark_delay(expr: &str, column: &str) -> Result<i64, String> {
    let e = Parser::new(&GenericDialect {}).try_with_sql(expr).and_then(|mut p| p.parse_expr()).map_err(|e| format!("WATERMARK FOR {column}: {e}"))?;
    let is_column = |e: &Expr| matches!(e, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(column));
    let wrong = || {
        format!(
            "WATERMARK FOR {column} AS {}: the watermark must be the column or the column minus an interval ({column} - INTERVAL '5' SECOND)",
            expr.trim()
        )
    };
    match &e {
        e if is_column(e) => Ok(0),
        Expr::BinaryOp { left, op: crate::error::sqlparser::ast::BinaryOperator::Minus, right } if is_column(left) => {
            interval_ms(right).map_err(|m| format!("WATERMARK FOR {column}: {m}"))
        }
        _ => Err(wrong()),
    }
}

fn unit_ms(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1.0,
        "SECOND" => 1e3,
        "MINUTE" => 60e3,
        "HOUR" => 3600e3,
        "DAY" => 86_400e3,
        _ => return None,
    })
}

/// A duration setting (`'1 h'`, `'30 min'`, `'10s'`, `'500 ms'`, `'2 d'`; a
/// bare number is milliseconds), in milliseconds; at least one.
pub fn duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = (t[..split].parse::<f64>().ok()?, t[split..].trim().to_ascii_lowercase());
    let per = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e3,
        "min" | "mins" | "minute" | "minutes" => 60e3,
        "h" | "hour" | "hours" => 3600e3,
        "d" | "day" | "days" => 86_400e3,
        _ => return None,
    };
    let ms = (n * per).round();
    (ms >= 1.0 && ms < 1e15).then_some(ms as u64)
}

/// An interval literal (`INTERVAL '10' SECOND`, `INTERVAL '1.5' MINUTES`,
/// `INTERVAL '10 seconds'`) in milliseconds; it must be positive.
pub fn interval_ms(e: &Expr) -> Result<i64, String> {
    let Expr::Interval(i) = e else { return Err(format!("{e} is not an interval (INTERVAL '10' SECOND)")) };
    let value = match i.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            other => return Err(format!("{other} is not an interval's amount")),
        },
        other => return Err(format!("{other} is not an interval's amount")),
    };
    let unit = match &i.leading_field {
        Some(f) => match f {
            DateTimeField::Millisecond | DateTimeField::Milliseconds => "MILLISECOND".to_string(),
            DateTimeField::Second | DateTimeField::Seconds => "SECOND".into(),
            DateTimeField::Minute | DateTimeField::Minutes => "MINUTE".into(),
            DateTimeField::Hour | DateTimeField::Hours => "HOUR".into(),
            DateTimeField::Day | DateTimeField::Days => "DAY".into(),
            other => return Err(format!("intervals of {other} are not supported (MILLISECOND, SECOND, MINUTE, HOUR, DAY)")),
        },
        None => String::new(),
    };
    let (amount, unit) = match unit.as_str() {
        "" => {
            let mut parts = value.split_whitespace();
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
        }
        _ => (value.clone(), unit),
    };
    let per = unit_ms(&unit).ok_or_else(|| format!("INTERVAL '{value}': a unit is needed (MILLISECOND, SECOND, MINUTE, HOUR, DAY)"))?;
    let n: f64 = amount.trim().parse().map_err(|_| format!("INTERVAL '{value}': '{amount}' is not a number"))?;
    let ms = (n * per).round();
    if !(ms >= 1.0 && ms < 1e15) {
        return Err(format!("INTERVAL '{value}' {unit}: must be at least a millisecond"));
    }
    Ok(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_and_window_functions_are_rewritten_in_place() {
        let text = "CREATE TABLE bids (\n  price BIGINT,\n  ts TIMESTAMP(3),\n  WATERMARK FOR ts AS ts - INTERVAL '0.5' SECOND\n) WITH ('connector' = 'file');\n\
                    SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) x;";
        let p = prepare(text, "q.sql").unwrap();
        assert_eq!(p.watermarks, vec![Watermark { column: "ts".into(), delay_ms: 500, at: (4, 3) }]);
        assert_eq!(p.text.len(), text.len(), "positions keep");
        assert!(p.text.contains("  ts TIMESTAMP(3) \n"), "{}", p.text);
        assert!(!p.text.contains("WATERMARK"));
        assert!(p.text.contains("FROM       TUMBLE(      bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)  x;"), "{}", p.text);
        assert!(p.text.contains(r#"WITH ("connector" = 'file')"#), "{}", p.text);
        let text = "SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY bidder, channel, DESCRIPTOR(ts), INTERVAL '1' SECOND))";
        let p = prepare(text, "q.sql").unwrap();
        assert_eq!(p.text.len(), text.len());
        assert!(p.text.contains("SESSION(      bids ,PART_BY(bidder,channel)    , DESCRIPTOR(ts)"), "{}", p.text);
        let p = prepare("SET 'parallelism' = '2'; SELECT 'a' = 'b'", "q.sql").unwrap();
        assert_eq!(p.text, r#"SET "parallelism" = '2'; SELECT 'a' = 'b'"#);
    }

    #[test]
    fn watermark_expressions_other_than_a_delay_are_refused() {
        let err = prepare("CREATE TABLE t (ts TIMESTAMP, WATERMARK FOR ts AS ts + INTERVAL '1' SECOND)", "q.sql").unwrap_err();
        assert!(err.to_string().starts_with("q.sql:1:31: WATERMARK FOR ts AS ts + INTERVAL '1' SECOND: the watermark must be"), "{err}");
        let err = prepare("CREATE TABLE t (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' YEAR)", "q.sql").unwrap_err();
        assert!(err.to_string().contains("intervals of YEAR are not supported"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("1 h"), Some(3_600_000));
        assert_eq!(duration_ms("30min"), Some(1_800_000));
        assert_eq!(duration_ms("500 ms"), Some(500));
        assert_eq!(duration_ms("250"), Some(250));
        assert_eq!(duration_ms("1.5 s"), Some(1500));
        assert_eq!(duration_ms("0 s"), None);
        assert_eq!(duration_ms("1 fortnight"), None);
        assert_eq!(duration_ms("soon"), None);
    }

    #[test]
    fn intervals() {
        let ms = |s: &str| interval_ms(&Parser::new(&GenericDialect {}).try_with_sql(s).unwrap().parse_expr().unwrap());
        assert_eq!(ms("INTERVAL '10' SECOND"), Ok(10_000));
        assert_eq!(ms("INTERVAL '1.5' MINUTES"), Ok(90_000));
        assert_eq!(ms("INTERVAL '2 hours'"), Ok(7_200_000));
        assert!(ms("INTERVAL '0' SECOND").unwrap_err().contains("at least a millisecond"));
        assert!(ms("5").unwrap_err().contains("not an interval"));
    }

    #[test]
    fn state_ttl_hints_are_read_out_of_their_comments() {
        let text = "INSERT INTO o SELECT /*+ STATE_TTL('A' = '1 h', 'p' = '30 min'), STATE_TTL('q' = '2d') */ a.x FROM a;";
        let p = prepare(text, "h.sql").unwrap();
        assert_eq!(p.text, text, "the comment stays (sqlparser skips it)");
        let ttl: Vec<(String, u64)> = p.hints.iter().flat_map(|h| h.ttl_ms.clone()).collect();
        assert_eq!(ttl, [("a".to_string(), 3_600_000), ("p".to_string(), 1_800_000), ("q".to_string(), 172_800_000)]);
        assert_eq!(p.hints[0].at, (1, 22));
        assert!(prepare("SELECT /* STATE_TTL('a' = 'x') */ 1;", "h.sql").unwrap().hints.is_empty(), "a comment without + is a comment");
        for (hint, message) in [
            ("/*+ BROADCAST(a) */", "h.sql:1:8: the hint BROADCAST is not supported (STATE_TTL('table or alias' = '1 h', ...))"),
            ("/*+ STATE_TTL('a' = 'soon') */", "STATE_TTL('a' = 'soon'): a duration is a number and a unit"),
            ("/*+ STATE_TTL(a = '1 h') */", "STATE_TTL takes 'table or alias' = 'duration' pairs"),
            ("/*+ STATE_TTL('a' = '1 h' */", "STATE_TTL(...) needs a comma between its pairs and a closing parenthesis"),
        ] {
            let err = prepare(&format!("SELECT {hint} 1;"), "h.sql").unwrap_err().to_string();
            assert!(err.contains(message), "{hint}: {err}");
        }
    }
}
