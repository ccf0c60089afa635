//! Sizes ("64MiB") and durations ("500ms") in specs, and their serde forms
//! ([`Bytes`], [`Dur`]) for connectors' typed configs: a config field of one
//! of these types accepts what a user writes and names the field and the
//! problem when it cannot.
//!
//! Hand-written rather than `humantime`/`bytesize`: users write fractions
//! ("1.5s", "0.5GiB") and microseconds ("500us"), which humantime does not
//! parse, and the messages here list the units a spec accepts.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes: a whole number with an optional unit B, KB, MB, GB (powers of 1000)
/// or KiB, MiB, GiB (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let n: usize = num.parse().map_err(|_| format!("'{s}' is not a size (like 64MiB or 1000000)"))?;
    let mult: usize = match unit {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("'{other}' is not a size unit (B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large"))
}

/// A duration: a number with a unit us, ms, s, m or h ("1.5s", "250ms").
/// Whole numbers are exact; fractions are rounded to the nanosecond.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let nanos_per: u128 = match unit {
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(format!("'{s}' needs a unit: us, ms, s, m or h")),
        other => return Err(format!("'{other}' is not a duration unit (us, ms, s, m, h)")),
    };
    let invalid = || format!("'{s}' is not a duration (like 500ms or 2s)");
    let nanos = if let Ok(whole) = num.parse::<u128>() {
        whole.checked_mul(nanos_per).ok_or_else(|| format!("'{s}' is too long"))?
    } else {
        let f: f64 = num.parse().map_err(|_| invalid())?;
        let n = f * nanos_per as f64;
        if !n.is_finite() || n >= u64::MAX as f64 * 1e9 {
            return Err(format!("'{s}' is too long"));
        }
        n.round() as u128
    };
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| format!("'{s}' is too long"))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// A duration as a spec writes it; serialises as whole microseconds ("1500us").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn millis(self) -> i64 {
        self.0.as_millis().min(i64::MAX as u128) as i64
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}us", self.0.as_micros()))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

/// A size in bytes as a spec writes it ("64MiB", or a number); serialises
/// as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub usize);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0 as u64)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => usize::try_from(n).map(Bytes).map_err(|_| serde::de::Error::custom(format!("{n} is too large"))),
            Raw::S(s) => parse_bytes(&s).map(Bytes).map_err(serde::de::Error::custom),
        }
    }
}

/// "must be between LO and HI, not V" unless `lo <= v <= hi`.
pub fn in_range<T: PartialOrd + std::fmt::Display>(v: T, lo: T, hi: T) -> Result<T, String> {
    if v < lo || v > hi {
        return Err(format!("must be between {lo} and {hi}, not {v}"));
    }
    Ok(v)
}

/// A duration within `[lo, hi]`, described in the units a user wrote.
pub fn duration_in_range(d: Duration, lo: Duration, hi: Duration) -> Result<Duration, String> {
    if d < lo || d > hi {
        return Err(format!("must be between {} and {}, not {}", show(lo), show(hi), show(d)));
    }
    Ok(d)
}

/// A short human form of a duration ("500us", "2s", "1h").
pub fn show(d: Duration) -> String {
    let us = d.as_micros();
    match us {
        0 => "0s".into(),
        us if us % 3_600_000_000 == 0 => format!("{}h", us / 3_600_000_000),
        us if us % 60_000_000 == 0 => format!("{}m", us / 60_000_000),
        us if us % 1_000_000 == 0 => format!("{}s", us / 1_000_000),
        us if us % 1_000 == 0 => format!("{}ms", us / 1_000),
        us => format!("{us}us"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("2 GB").unwrap(), 2_000_000_000);
        assert!(parse_bytes("64 MiBs").unwrap_err().contains("not a size unit"));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_bytes("18446744073709551615GiB").unwrap_err(), "'18446744073709551615GiB' is too large");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 days").unwrap_err().contains("not a duration unit"));
        assert_eq!(parse_duration("100000000000000000000s").unwrap_err(), "'100000000000000000000s' is too long");
        assert_eq!(parse_duration("99999999999999999999999999h").unwrap_err(), "'99999999999999999999999999h' is too long");
        assert!(parse_duration("1e400s").is_err());
    }

    #[test]
    fn serde_forms_round_trip() {
        let d: Dur = serde_json::from_str("\"1.5s\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1500000us\"");
        assert_eq!(serde_json::from_str::<Dur>("\"1500000us\"").unwrap(), d);
        let b: Bytes = serde_json::from_str("\"2KiB\"").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "2048");
        assert_eq!(serde_json::from_str::<Bytes>("2048").unwrap(), b);
    }

    #[test]
    fn ranges_say_the_range() {
        assert_eq!(in_range(0usize, 1, 10).unwrap_err(), "must be between 1 and 10, not 0");
        let e = duration_in_range(Duration::from_secs(7200), Duration::from_millis(10), Duration::from_secs(3600)).unwrap_err();
        assert_eq!(e, "must be between 10ms and 1h, not 2h");
    }
}
