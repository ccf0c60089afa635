//! A pipeline's dataflow as the API shows it (and the dashboard draws it):
//! its nodes, their inputs, and the chains the physical plan runs them in.

use weir_engine::{LogicalDataflow, Partitioning, Role};
use weir_spec::PlannedNode;

use crate::model::{GraphEdge, GraphNode};

fn role(r: Role) -> &'static str {
    match r {
        Role::Source => "source",
        Role::Operator => "operator",
        Role::Sink => "sink",
    }
}

/// Every node of `logical`, with the plugin each operator was planned with.
/// A node's chain is the first node of the chain it runs in (nodes joined by
/// a forward edge between equal parallelisms, as the physical plan chains
/// them).
pub(crate) fn graph_of(logical: &LogicalDataflow, planned: &[PlannedNode]) -> Vec<GraphNode> {
    let n = logical.nodes.len();
    let mut chain: Vec<u32> = (0..n as u32).collect();
    // Nodes come after their inputs: a parent's chain is known first.
    for id in 0..n {
        if let Some(parent) = logical.chain_parent(id) {
            chain[id] = chain[parent];
        }
    }
    logical
        .nodes
        .iter()
        .enumerate()
        .map(|(id, node)| GraphNode {
            name: node.name.clone(),
            role: role(node.role).into(),
            kind: node.descriptor.kind.clone(),
            parallelism: node.parallelism,
            plugin: planned.iter().find(|p| p.name == node.name).and_then(|p| p.logic.as_ref()).map(|l| l.label.clone()),
            chain: chain[id],
            inputs: node
                .inputs
                .iter()
                .map(|e| {
                    let from = &logical.nodes[e.from.0];
                    GraphEdge {
                        from: from.name.clone(),
                        output: (e.port > 0).then(|| from.side_outputs.get(e.port as usize - 1).cloned()).flatten(),
                        partitioning: match e.partitioning {
                            Partitioning::Forward => "forward",
                            Partitioning::Rebalance => "rebalance",
                            Partitioning::KeyBy(_) => "key_by",
                        }
                        .into(),
                    }
                })
                .collect(),
        })
        .collect()
}
