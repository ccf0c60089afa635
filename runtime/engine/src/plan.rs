//! The physical plan: which tasks run, which nodes each task chains, and the
//! channels and exchanges between tasks. A pure function of the logical
//! dataflow, separate from where the tasks run (threads of this process
//! today; the executor and its transport decide).
//!
//! A node whose only input is a forward edge from a node of equal parallelism
//! is *chained*: it runs in its parent's task, fed by a call instead of a
//! channel. Every other node heads tasks of its own (one per parallel
//! instance), each with one input channel that all its producers write to;
//! producers of a channel are numbered from 0, in the order of the node's
//! input edges, then by producer task.

use crate::dataflow::{LogicalDataflow, Partitioning, Role};

/// Where one output port of a chain member sends its batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Member `n` of the same task's chain.
    Chained(usize),
    /// Exchange `n` of the same task.
    Exchange(usize),
}

/// One node of a task's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberPlan {
    /// The node, by index in the logical dataflow.
    pub node: usize,
    /// Per output port (0: main, `n`: side output `n`), where it goes.
    pub outputs: Vec<Vec<Target>>,
}

/// The sending side of one edge in one producer task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangePlan {
    /// Forward here means one channel; a forward edge between nodes of
    /// different parallelism is planned as a rebalance.
    pub partitioning: Partitioning,
    /// The channels it writes to, by consumer task (one for forward).
    pub channels: Vec<usize>,
    /// This producer's number at its consumer's channels.
    pub from: u32,
    /// Where round-robin starts (spread over producer tasks).
    pub first: usize,
}

/// What feeds a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskInput {
    /// The task's head is a source.
    Source,
    /// Channel `channel`, written by `producers` producer tasks.
    Channel { channel: usize, producers: usize },
}

/// One parallel task: a chain of nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPlan {
    /// "head-index", unique in the job.
    pub name: String,
    /// The task index within its nodes' parallelism.
    pub index: u32,
    /// Chain members in topological order; `members[0]` is the head.
    pub members: Vec<MemberPlan>,
    pub exchanges: Vec<ExchangePlan>,
    pub input: TaskInput,
}

/// The channel into one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelPlan {
    /// The task's head node.
    pub node: usize,
    pub task: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysicalPlan {
    pub tasks: Vec<TaskPlan>,
    pub channels: Vec<ChannelPlan>,
}

impl PhysicalPlan {
    /// Plan the tasks of a (checked) logical dataflow.
    pub fn of(df: &LogicalDataflow) -> PhysicalPlan {
        let n = df.nodes.len();
        let parent: Vec<Option<usize>> = (0..n).map(|i| df.chain_parent(i)).collect();
        let mut root: Vec<usize> = (0..n).collect();
        for i in 0..n {
            // Parents come before their children, so theirs is known.
            if let Some(p) = parent[i] {
                root[i] = root[p];
            }
        }
        let par = |i: usize| df.nodes[i].parallelism;
        // Consumers of each node: (consumer, edge index), in order.
        let mut consumers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (c, node) in df.nodes.iter().enumerate() {
            for (ei, e) in node.inputs.iter().enumerate() {
                consumers[e.from.0].push((c, ei));
            }
        }
        // Channels into every task of every node that heads a task, sources aside.
        let mut channels = Vec::new();
        let mut first_channel = vec![usize::MAX; n];
        for i in 0..n {
            if parent[i].is_none() && df.nodes[i].role != Role::Source {
                first_channel[i] = channels.len();
                channels.extend((0..par(i)).map(|task| ChannelPlan { node: i, task }));
            }
        }
        let producer_base = |consumer: usize, edge: usize| -> u32 {
            df.nodes[consumer].inputs[..edge].iter().map(|e| par(e.from.0)).sum()
        };
        let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); n];
        // Each node's position in its task's chain.
        let mut local = vec![0; n];
        for i in 0..n {
            local[i] = members_of[root[i]].len();
            members_of[root[i]].push(i);
        }
        let mut tasks = Vec::new();
        for r in (0..n).filter(|&i| parent[i].is_none()) {
            let members = &members_of[r];
            for t in 0..par(r) {
                let mut exchanges = Vec::new();
                let mut planned = Vec::with_capacity(members.len());
                for &m in members {
                    let mut outputs = vec![Vec::new(); 1 + df.nodes[m].side_outputs.len()];
                    for &(c, ei) in &consumers[m] {
                        let e = &df.nodes[c].inputs[ei];
                        let target = if parent[c] == Some(m) {
                            Target::Chained(local[c])
                        } else {
                            let base = first_channel[c];
                            let (partitioning, chans) = match &e.partitioning {
                                // One to one only for a node's one input (a
                                // node of several counts every producer task
                                // of each: each must send to each of its tasks).
                                Partitioning::Forward if par(c) == par(m) && df.nodes[c].inputs.len() == 1 => {
                                    (Partitioning::Forward, vec![base + t as usize])
                                }
                                Partitioning::Forward => (Partitioning::Rebalance, (base..base + par(c) as usize).collect()),
                                p => (p.clone(), (base..base + par(c) as usize).collect()),
                            };
                            exchanges.push(ExchangePlan {
                                partitioning,
                                channels: chans,
                                from: producer_base(c, ei) + t,
                                first: t as usize,
                            });
                            Target::Exchange(exchanges.len() - 1)
                        };
                        outputs[e.port as usize].push(target);
                    }
                    planned.push(MemberPlan { node: m, outputs });
                }
                let input = if df.nodes[r].role == Role::Source {
                    TaskInput::Source
                } else {
                    let producers = df.nodes[r].inputs.iter().map(|e| par(e.from.0) as usize).sum();
                    TaskInput::Channel { channel: first_channel[r] + t as usize, producers }
                };
                tasks.push(TaskPlan { name: format!("{}-{t}", df.nodes[r].name), index: t, members: planned, exchanges, input });
            }
        }
        PhysicalPlan { tasks, channels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::{Descriptor, Edge, KeySelector, LogicalNode, NodeId};

    fn node(name: &str, role: Role, parallelism: u32, inputs: Vec<Edge>) -> LogicalNode {
        LogicalNode {
            name: name.into(),
            role,
            parallelism,
            descriptor: Descriptor::new("test", serde_json::Value::Null),
            inputs,
            side_outputs: vec![],
            event_time: None,
            on_error: Default::default(),
        }
    }

    #[test]
    fn forward_edges_of_equal_parallelism_chain_and_others_get_channels() {
        // src(2) -> map(2) forward: chained; map -> count(3) keyed: channels;
        // count -> out(3) forward: chained; src -> audit(1) forward: rebalance.
        let df = LogicalDataflow {
            options: Default::default(),
            nodes: vec![
                node("src", Role::Source, 2, vec![]),
                node("map", Role::Operator, 2, vec![Edge::forward(NodeId(0))]),
                node("count", Role::Operator, 3, vec![Edge::key_by(NodeId(1), KeySelector::RecordKey)]),
                node("out", Role::Sink, 3, vec![Edge::forward(NodeId(2))]),
                node("audit", Role::Sink, 1, vec![Edge::forward(NodeId(0))]),
            ],
        };
        let plan = PhysicalPlan::of(&df);
        let names: Vec<_> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["src-0", "src-1", "count-0", "count-1", "count-2", "audit-0"]);
        assert_eq!(plan.channels.len(), 3 + 1);
        let src1 = &plan.tasks[1];
        assert_eq!(src1.members.iter().map(|m| m.node).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(src1.input, TaskInput::Source);
        // The source's main output: the chained map, then the audit exchange.
        assert_eq!(src1.members[0].outputs, vec![vec![Target::Chained(1), Target::Exchange(0)]]);
        assert_eq!(src1.members[1].outputs, vec![vec![Target::Exchange(1)]]);
        let keyed = &src1.exchanges[1];
        assert_eq!(keyed.partitioning, Partitioning::KeyBy(KeySelector::RecordKey));
        assert_eq!(keyed.channels, vec![0, 1, 2]);
        assert_eq!(keyed.from, 1, "producer 1 of count's channels");
        let audit = &src1.exchanges[0];
        assert_eq!(audit.partitioning, Partitioning::Rebalance, "forward across parallelism 2 -> 1");
        assert_eq!(audit.channels, vec![3]);
        let count2 = &plan.tasks[4];
        assert_eq!(count2.members.iter().map(|m| m.node).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(count2.input, TaskInput::Channel { channel: 2, producers: 2 });
        assert_eq!(plan.tasks[5].input, TaskInput::Channel { channel: 3, producers: 2 });
    }

    #[test]
    fn producers_of_a_union_are_numbered_by_edge_then_task() {
        let df = LogicalDataflow {
            options: Default::default(),
            nodes: vec![
                node("a", Role::Source, 2, vec![]),
                node("b", Role::Source, 3, vec![]),
                node("u", Role::Sink, 1, vec![Edge::forward(NodeId(0)), Edge::forward(NodeId(1))]),
            ],
        };
        let plan = PhysicalPlan::of(&df);
        let froms: Vec<u32> = plan.tasks.iter().filter(|t| !t.exchanges.is_empty()).map(|t| t.exchanges[0].from).collect();
        assert_eq!(froms, [0, 1, 2, 3, 4]);
        assert_eq!(plan.tasks.last().unwrap().input, TaskInput::Channel { channel: 0, producers: 5 });
    }

    #[test]
    fn a_union_of_inputs_of_its_own_parallelism_hears_from_every_producer_task() {
        // a(2) and b(1) forward into u(2): every task of a and b writes to
        // every task of u, which counts all three producers.
        let df = LogicalDataflow {
            options: Default::default(),
            nodes: vec![
                node("a", Role::Source, 2, vec![]),
                node("b", Role::Source, 1, vec![]),
                node("u", Role::Operator, 2, vec![Edge::forward(NodeId(0)), Edge::forward(NodeId(1))]),
            ],
        };
        let plan = PhysicalPlan::of(&df);
        for t in plan.tasks.iter().filter(|t| t.input == TaskInput::Source) {
            assert_eq!(t.exchanges[0].partitioning, Partitioning::Rebalance, "{}", t.name);
            assert_eq!(t.exchanges[0].channels, vec![0, 1], "{}", t.name);
        }
        let froms: Vec<u32> = plan.tasks.iter().filter(|t| !t.exchanges.is_empty()).map(|t| t.exchanges[0].from).collect();
        assert_eq!(froms, [0, 1, 2]);
        let u: Vec<_> = plan.tasks.iter().filter(|t| t.name.starts_with("u-")).map(|t| t.input).collect();
        assert_eq!(u, [TaskInput::Channel { channel: 0, producers: 3 }, TaskInput::Channel { channel: 1, producers: 3 }]);
    }

    #[test]
    fn a_long_forward_chain_is_one_task_per_instance() {
        let mut nodes = vec![node("s", Role::Source, 1, vec![])];
        for i in 1..5000 {
            nodes.push(node(&format!("op{i}"), Role::Operator, 1, vec![Edge::forward(NodeId(i - 1))]));
        }
        let plan = PhysicalPlan::of(&LogicalDataflow { options: Default::default(), nodes });
        assert_eq!(plan.tasks.len(), 1);
        assert_eq!(plan.tasks[0].members.len(), 5000);
    }
}
