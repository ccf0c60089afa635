//! The on-disk layout of the RocksDB backend: row keys, values, the snapshot
//! metadata file.
//!
//! Row key: `key_group u16 BE | key length u32 BE | key | [0x01 | map key]`,
//! so a key group is a contiguous key range and a key's map entries share a
//! prefix (the 0x01 sets entries apart from a TTL map's header row, even for
//! an empty map key).
//! Value: `[written_at i64 BE, only when the state has a TTL] | payload`; map
//! entries carry no time: a TTL map's time is in its header row, whose key is
//! the bare key prefix.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use weir_state::{StateDescriptor, StateKind};

/// Bytes before the key in a row key.
pub(super) const KEY_HEADER: usize = 6;
/// The byte between the key prefix and the map key of a map entry row.
pub(super) const MAP_ENTRY: u8 = 1;
/// Bytes of the write-time prefix of values of states with a TTL.
pub(super) const TIME_LEN: usize = 8;

/// Write the row-key prefix of `key` (everything but the map key) into `buf`.
pub(super) fn key_prefix(buf: &mut Vec<u8>, key_group: u32, key: &[u8]) {
    buf.clear();
    push_key_prefix(buf, key_group, key);
}

/// Append the row-key prefix of `key` to `buf`.
pub(super) fn push_key_prefix(buf: &mut Vec<u8>, key_group: u32, key: &[u8]) {
    debug_assert!(key_group <= u32::from(u16::MAX));
    buf.extend_from_slice(&(key_group as u16).to_be_bytes());
    buf.extend_from_slice(&(key.len() as u32).to_be_bytes());
    buf.extend_from_slice(key);
}

/// The length of the key prefix a row key starts with, if well formed.
pub(super) fn prefix_len(row: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(row.get(2..KEY_HEADER)?.try_into().ok()?) as usize;
    let n = KEY_HEADER.checked_add(len)?;
    (n <= row.len()).then_some(n)
}

/// The key group a row key starts with, if it is long enough to have one.
pub(super) fn row_key_group(row: &[u8]) -> Option<u32> {
    row.get(..2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
}

/// The first row key of key group `kg` (`kg` may be one past the last group).
pub(super) fn key_group_start(kg: u32) -> Option<[u8; 2]> {
    u16::try_from(kg).ok().map(u16::to_be_bytes)
}

/// The smallest key above every key that starts with `prefix`; `None` if there
/// is none (the prefix is all 0xff).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether an entry written at `written_at` is expired at `now`.
#[inline]
pub(super) fn expired(ttl_ms: Option<i64>, written_at: i64, now: i64) -> bool {
    ttl_ms.is_some_and(|ttl| now.saturating_sub(written_at) >= ttl)
}

/// The write time at the start of a value of a state with a TTL.
#[inline]
pub(super) fn value_time(value: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(value.get(..TIME_LEN)?.try_into().ok()?))
}

/// A value, list or reducing entry, as cached. Values up to 16 bytes are
/// inline (no allocation per cached entry).
pub(super) enum Data {
    Value(SmallVec<[u8; 16]>),
    /// The items and the bytes the cache counts for them ([`Data::heap_bytes`]).
    List { items: Vec<Vec<u8>>, bytes: usize },
    Reducing(i64),
}

/// Bytes a list item costs the cache besides its payload (its `Vec`).
const ITEM_BYTES: usize = std::mem::size_of::<Vec<u8>>();

impl Data {
    pub(super) fn list(items: Vec<Vec<u8>>) -> Data {
        let bytes = items.iter().map(|i| i.len() + ITEM_BYTES).sum();
        Data::List { items, bytes }
    }

    /// Append one item to a list.
    pub(super) fn push_item(items: &mut Vec<Vec<u8>>, bytes: &mut usize, item: &[u8]) {
        items.push(item.to_vec());
        *bytes += item.len() + ITEM_BYTES;
    }

    /// The heap bytes this entry holds beyond its inline size, as the record
    /// cache counts them (O(1)).
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Data::Value(v) if v.spilled() => v.capacity(),
            Data::Value(_) | Data::Reducing(_) => 0,
            Data::List { bytes, .. } => *bytes,
        }
    }

    /// Append the stored form (with the time prefix if `ttl`) to `out`.
    pub(super) fn append(&self, out: &mut Vec<u8>, ttl: bool, written_at: i64) {
        if ttl {
            out.extend_from_slice(&written_at.to_be_bytes());
        }
        match self {
            Data::Value(v) => out.extend_from_slice(v),
            Data::Reducing(r) => out.extend_from_slice(&r.to_le_bytes()),
            Data::List { items, .. } => {
                for item in items {
                    out.extend_from_slice(&(item.len() as u32).to_le_bytes());
                    out.extend_from_slice(item);
                }
            }
        }
    }

    /// Decode a stored value of a state of `kind`: (written_at, data).
    /// `written_at` is 0 without TTL. `None` if malformed.
    pub(super) fn decode(kind: StateKind, ttl: bool, stored: &[u8]) -> Option<(i64, Data)> {
        let (written_at, payload) = if ttl { (value_time(stored)?, &stored[TIME_LEN..]) } else { (0, stored) };
        let data = match kind {
            StateKind::Value => Data::Value(SmallVec::from_slice(payload)),
            StateKind::Reducing(_) => Data::Reducing(i64::from_le_bytes(payload.try_into().ok()?)),
            StateKind::List => {
                let mut items = Vec::new();
                let mut rest = payload;
                while !rest.is_empty() {
                    let (len, r) = rest.split_at_checked(4)?;
                    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
                    let (item, r) = r.split_at_checked(len)?;
                    items.push(item.to_vec());
                    rest = r;
                }
                Data::list(items)
            }
            StateKind::Map => return None,
        };
        Some((written_at, data))
    }
}

/// The column family of a state (prefixed: "default" is RocksDB's own).
pub(super) fn cf_name(state: &str) -> String {
    format!("state:{state}")
}

/// The name of the metadata file of a snapshot.
pub(super) const META_FILE: &str = "weir-rocks.meta";
/// The name of a heap-backend snapshot's file.
pub(super) const HEAP_FILE: &str = "heap.state";
const MAGIC: &[u8; 8] = b"WEIRROCK";
const FORMAT: u32 = 1;

/// What a snapshot holds, besides the RocksDB checkpoint.
#[derive(Serialize, Deserialize)]
pub(super) struct Meta {
    pub max_parallelism: u32,
    /// The key groups of the backend that took the snapshot.
    pub key_group_start: u32,
    pub key_group_end: u32,
    /// The processing time of the snapshot: entries expired then are left out
    /// at restore.
    pub time_ms: i64,
    pub states: Vec<StateDescriptor>,
}

impl Meta {
    pub(super) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT.to_le_bytes());
        postcard::to_extend(self, out)
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Meta, String> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or("not a RocksDB-backend snapshot metadata file (bad magic)")?;
        let (format, rest) = rest.split_at_checked(4).ok_or("truncated header")?;
        let format = u32::from_le_bytes(format.try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(format!("snapshot format {format}; this version reads format {FORMAT}"));
        }
        postcard::from_bytes(rest).map_err(|e| format!("bad metadata: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_order_by_key_group_and_bound_map_entries() {
        let mut a = Vec::new();
        key_prefix(&mut a, 3, b"k");
        assert_eq!(a, [0, 3, 0, 0, 0, 1, b'k']);
        assert_eq!(prefix_len(&[a.as_slice(), b"mapkey"].concat()), Some(a.len()));
        assert_eq!(prefix_end(&a).unwrap(), [0, 3, 0, 0, 0, 1, b'l']);
        assert_eq!(prefix_end(&[1, 0xff]).unwrap(), [2]);
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(key_group_start(65_536), None);
    }

    #[test]
    fn data_round_trips() {
        let list = Data::list(vec![b"a".to_vec(), Vec::new(), b"bc".to_vec()]);
        let mut out = Vec::new();
        list.append(&mut out, true, 42);
        let Some((42, Data::List { items: l, bytes })) = Data::decode(StateKind::List, true, &out) else { panic!("bad decode") };
        assert_eq!(l, vec![b"a".to_vec(), Vec::new(), b"bc".to_vec()]);
        assert_eq!(bytes, 3 + 3 * ITEM_BYTES);
        out.clear();
        Data::Reducing(-7).append(&mut out, false, 0);
        assert!(matches!(Data::decode(StateKind::Reducing(weir_state::Reducer::Sum), false, &out), Some((0, Data::Reducing(-7)))));
        assert!(Data::decode(StateKind::List, false, &[5, 0, 0, 0, 1]).is_none());
    }
}
