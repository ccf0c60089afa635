//! Which epoch a sink task's transactions have committed, recorded in Kafka
//! itself and atomically with them: each transaction also commits an offset
//! of a consumer group of the task's own (`<prefix>-<task>`), equal to its
//! epoch and tagged with the run, on partition 0 of the progress topic (as
//! `sendOffsetsToTransaction` does for Kafka Streams). After a crash, the
//! group's committed offset says whether the transaction of a completed
//! checkpoint committed, so recovery neither loses nor repeats it.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{self, KafkaError};

pub(crate) struct Progress {
    consumer: BaseConsumer,
    group: String,
    topic: String,
}

/// The offset that stands for an epoch (the final one as the largest).
fn offset_of(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

impl Progress {
    pub fn new(bootstrap: &str, properties: &std::collections::BTreeMap<String, String>, group: &str, topic: &str) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = client::config(bootstrap, &[("group.id", group), ("enable.auto.commit", "false")], properties)
            .create()
            .map_err(|e| KafkaError::client(format!("cannot create the progress client of group {group}"), e))?;
        Ok(Progress { consumer, group: group.to_string(), topic: topic.to_string() })
    }

    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata, KafkaError> {
        self.consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Other(format!("no group metadata for the progress group {}", self.group)))
    }

    /// The offsets to commit with the transaction of `epoch` of run `run`.
    pub fn offsets(&self, epoch: u64, run: &str) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Offset(offset_of(epoch)))
            .map_err(|e| KafkaError::client("cannot record progress", e))?;
        for mut e in tpl.elements() {
            e.set_metadata(run);
        }
        Ok(tpl)
    }

    /// The last epoch the run `run` committed (`None`: nothing of this run).
    pub fn committed(&self, run: &str) -> Result<Option<u64>, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, 0);
        let got = self
            .consumer
            .committed_offsets(tpl, client::METADATA_TIMEOUT)
            .map_err(|e| KafkaError::client(format!("cannot read the progress of group {}", self.group), e))?;
        let e = got.find_partition(&self.topic, 0);
        Ok(match e {
            Some(e) if e.metadata() == run => match e.offset() {
                Offset::Offset(i64::MAX) => Some(u64::MAX),
                Offset::Offset(o) if o >= 0 => Some(o as u64),
                _ => None,
            },
            _ => None,
        })
    }
}
