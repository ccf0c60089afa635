//! Sizes ("64MiB") and durations ("500ms") in specs.

use std::time::Duration;

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
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration (like 500ms or 2s)"))?;
    let secs = match unit {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "" => return Err(format!("'{s}' needs a unit: us, ms, s, m or h")),
        other => return Err(format!("'{other}' is not a duration unit (us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is not a valid duration"))
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
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 days").unwrap_err().contains("not a duration unit"));
    }
}
