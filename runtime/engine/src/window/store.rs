//! A window operator's windows in the task's keyed state backend: one map
//! state, per key, from window bounds to the guest's accumulator. Because it is
//! ordinary keyed state, checkpoints, restore and rescaling (by key group)
//! carry windows like any other state, on the heap or in RocksDB.

use weir_state::{KeyedStateBackend, StateDescriptor, StateError, StateId, StateKind};

use super::assigner::Bounds;

/// The name of the map state holding windows.
pub const WINDOWS_STATE: &str = "weir.windows";

pub fn declare(backend: &mut dyn KeyedStateBackend) -> Result<StateId, StateError> {
    backend.declare(StateDescriptor { name: WINDOWS_STATE.into(), kind: StateKind::Map, ttl: None })
}

/// Bounds as a map key that sorts like the bounds (big-endian, sign bit flipped).
pub fn encode(b: &Bounds) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&((b.start as u64) ^ (1 << 63)).to_be_bytes());
    out[8..].copy_from_slice(&((b.end as u64) ^ (1 << 63)).to_be_bytes());
    out
}

pub fn decode(bytes: &[u8]) -> Option<Bounds> {
    let bytes: &[u8; 16] = bytes.try_into().ok()?;
    let start = (u64::from_be_bytes(bytes[..8].try_into().ok()?) ^ (1 << 63)) as i64;
    let end = (u64::from_be_bytes(bytes[8..].try_into().ok()?) ^ (1 << 63)) as i64;
    Some(Bounds { start, end })
}

/// A key's windows with their accumulators, in time order.
pub fn windows(backend: &mut dyn KeyedStateBackend, id: StateId, key: &[u8]) -> Result<Vec<(Bounds, Vec<u8>)>, StateError> {
    let mut out = Vec::new();
    for (k, v) in backend.map_entries(id, key)? {
        let b = decode(&k).ok_or_else(|| {
            StateError::Storage(format!("state {WINDOWS_STATE} holds a malformed window key of {} bytes", k.len()))
        })?;
        out.push((b, v));
    }
    out.sort_by_key(|(b, _)| *b);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_state::{HeapBackend, KeyGroups};

    #[test]
    fn bounds_round_trip_and_sort() {
        let bs = [Bounds { start: -5, end: 3 }, Bounds { start: 0, end: 10 }, Bounds { start: i64::MIN, end: i64::MAX }];
        for b in bs {
            assert_eq!(decode(&encode(&b)), Some(b));
        }
        assert!(encode(&bs[0]) < encode(&bs[1]));
        assert!(encode(&bs[2]) < encode(&bs[0]));
        assert_eq!(decode(b"short"), None);
    }

    #[test]
    fn windows_per_key_in_time_order() {
        let mut h = HeapBackend::new(KeyGroups::all(128));
        let id = declare(&mut h).unwrap();
        h.map_put(id, b"k", &encode(&Bounds { start: 60, end: 120 }), b"b").unwrap();
        h.map_put(id, b"k", &encode(&Bounds { start: 0, end: 60 }), b"a").unwrap();
        h.map_put(id, b"j", &encode(&Bounds { start: 0, end: 60 }), b"c").unwrap();
        let w = windows(&mut h, id, b"k").unwrap();
        assert_eq!(w, vec![(Bounds { start: 0, end: 60 }, b"a".to_vec()), (Bounds { start: 60, end: 120 }, b"b".to_vec())]);
    }
}
