//! Which task reads which partition: a pure function of the topic, the
//! partition and the parallelism, as Flink's KafkaSource assigns them (a
//! topic's partitions start at a task chosen by the topic's hash and go round
//! robin), so every task agrees without talking to the others, and a new
//! partition has an owner at once.

/// The task (of `parallelism`) that reads `partition` of `topic`.
pub(crate) fn owner(topic: &str, partition: i32, parallelism: u32) -> u32 {
    let start = (xxhash_rust::xxh3::xxh3_64(topic.as_bytes()) & 0x7fff_ffff) as u64 % u64::from(parallelism);
    ((start + partition as u64) % u64::from(parallelism)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_one_owner_and_owners_spread() {
        for p in [1u32, 2, 3, 7] {
            let mut per_task = vec![0; p as usize];
            for part in 0..21 {
                let t = owner("clicks", part, p);
                assert!(t < p);
                assert_eq!(t, owner("clicks", part, p), "stable");
                per_task[t as usize] += 1;
            }
            let (lo, hi) = (per_task.iter().min().unwrap(), per_task.iter().max().unwrap());
            assert!(hi - lo <= 1, "{per_task:?}");
        }
    }
}
