//! What the Kafka source and sink share: client settings (bootstrap servers
//! and pass-through librdkafka properties, with the ones Weir owns refused)
//! and errors that name the cluster, topic, partition and offset.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::metadata::Metadata;

/// How long a metadata request may take before the cluster counts as
/// unreachable.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// A Kafka connector's failure.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach the Kafka cluster at {bootstrap} within {}s: {message}", METADATA_TIMEOUT.as_secs())]
    Unreachable { bootstrap: String, message: String },
    #[error("topic '{topic}' does not exist in the Kafka cluster at {bootstrap}")]
    NoTopic { topic: String, bootstrap: String },
    #[error("topic {topic} partition {partition} offset {offset}: {message}")]
    Record { topic: String, partition: i32, offset: i64, message: String },
    #[error("{what}: {source}")]
    Client {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("{0}")]
    Other(String),
}

impl KafkaError {
    pub(crate) fn client(what: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        KafkaError::Client { what: what.into(), source }
    }
}

/// Properties Weir sets itself, which `properties:` may not override.
const OWNED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "transactional.id",
    "enable.idempotence",
    "enable.partition.eof",
    "partitioner",
];

/// Check `properties:`: the ones Weir owns are refused, naming why.
pub(crate) fn check_properties(properties: &BTreeMap<String, String>) -> Result<(), String> {
    match properties.keys().find(|k| OWNED.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "'{k}' is set by Weir (bootstrap, group, delivery and partitioning are settings of the connector), not a pass-through property"
        )),
        None => Ok(()),
    }
}

/// librdkafka properties that run a command or load code: never from a spec
/// sent to a node.
const RUNS_CODE: &[&str] = &["plugin.library.paths", "sasl.kerberos.kinit.cmd"];

/// On a node, properties naming files (`ssl.*.location`, keytabs) must name
/// files under the node's allowed directories, and none may run code.
pub(crate) fn check_property_paths(properties: &BTreeMap<String, String>, cx: &weir_spec::Check<'_>) -> Result<(), weir_spec::SpecError> {
    if !cx.on_node() {
        return Ok(());
    }
    for (k, v) in properties {
        let field = format!("properties.{k}");
        if RUNS_CODE.contains(&k.as_str()) {
            return Err(cx.error_at("properties", &field, "runs a command or loads a library on the node: not allowed in a spec sent to a node"));
        }
        if k.ends_with(".location") || k.ends_with(".keytab") {
            cx.path(&field, std::path::Path::new(v))?;
        }
    }
    Ok(())
}

/// A client config: bootstrap, Weir's settings, then the user's properties.
pub(crate) fn config(bootstrap: &str, ours: &[(&str, &str)], properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// The cluster's metadata, or an error saying it cannot be reached.
pub(crate) fn metadata<C: ConsumerContext>(consumer: &BaseConsumer<C>, bootstrap: &str, topic: Option<&str>) -> Result<Metadata, KafkaError> {
    consumer
        .fetch_metadata(topic, METADATA_TIMEOUT)
        .map_err(|e| KafkaError::Unreachable { bootstrap: bootstrap.to_string(), message: e.to_string() })
}

/// The partitions of `topic`, or an error if it does not exist.
pub(crate) fn partitions<C: ConsumerContext>(consumer: &BaseConsumer<C>, bootstrap: &str, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let md = metadata(consumer, bootstrap, Some(topic))?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ps.sort_unstable();
            Ok(ps)
        }
        _ => Err(KafkaError::NoTopic { topic: topic.to_string(), bootstrap: bootstrap.to_string() }),
    }
}
