//! Key groups, as in Flink: keys hash into a fixed number of key groups (the
//! maximum parallelism) and each parallel task owns a contiguous range of them,
//! so rescaling moves whole key groups.

use std::ops::Range;

/// The default number of key groups.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// The stable hash of a key (xxh3), the same on every host and version.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The key group of a key.
#[inline]
pub fn key_group(key: &[u8], max_parallelism: u32) -> u32 {
    key_group_of_hash(key_hash(key), max_parallelism)
}

/// The key group of a key whose [`key_hash`] is `hash`.
#[inline]
pub fn key_group_of_hash(hash: u64, max_parallelism: u32) -> u32 {
    (hash % u64::from(max_parallelism)) as u32
}

/// The parallel task that owns a key group.
#[inline]
pub fn task_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The key groups a parallel task owns.
pub fn key_group_range(task: u32, parallelism: u32, max_parallelism: u32) -> Range<u32> {
    let (t, p, m) = (u64::from(task), u64::from(parallelism), u64::from(max_parallelism));
    let start = (t * m).div_ceil(p);
    let end = ((t + 1) * m).div_ceil(p);
    start as u32..end as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_group_belongs_to_exactly_the_task_whose_range_holds_it() {
        for m in [1u32, 7, 128, 1000] {
            for p in 1..=m.min(16) {
                let mut owned = vec![0u32; m as usize];
                for t in 0..p {
                    for kg in key_group_range(t, p, m) {
                        owned[kg as usize] += 1;
                        assert_eq!(task_for_key_group(kg, m, p), t, "m={m} p={p} kg={kg}");
                    }
                }
                assert!(owned.iter().all(|&c| c == 1), "m={m} p={p}");
            }
        }
    }

    #[test]
    fn hash_is_stable() {
        // Fixed values: state layouts and savepoints depend on them.
        assert_eq!(key_hash(b""), 0x2d06800538d394c2);
        assert_eq!(key_group(b"hello", 128), (key_hash(b"hello") % 128) as u32);
    }
}
