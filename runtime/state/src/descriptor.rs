use std::fmt;
use std::time::Duration;

/// A declared state's handle, valid for the operator instance's lifetime.
pub type StateId = u32;

/// How a reducing state combines values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reducer {
    Sum,
    Min,
    Max,
}

impl Reducer {
    pub fn apply(self, acc: i64, value: i64) -> i64 {
        match self {
            Reducer::Sum => acc.wrapping_add(value),
            Reducer::Min => acc.min(value),
            Reducer::Max => acc.max(value),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StateKind {
    Value,
    Map,
    List,
    Reducing(Reducer),
}

impl StateKind {
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::Map => "map",
            StateKind::List => "list",
            StateKind::Reducing(_) => "reducing",
        }
    }
}

/// A named state of an operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateDescriptor {
    pub name: String,
    pub kind: StateKind,
    /// Entries not written for this long are invisible and purged.
    pub ttl: Option<Duration>,
}

impl fmt::Display for StateDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StateKind::Reducing(r) => write!(f, "a reducing ({r:?}) state")?,
            k => write!(f, "a {} state", k.name())?,
        }
        match self.ttl {
            Some(ttl) => write!(f, " with TTL {ttl:?}"),
            None => write!(f, " without TTL"),
        }
    }
}

impl StateDescriptor {
    /// The TTL in milliseconds.
    pub fn ttl_ms(&self) -> Option<i64> {
        self.ttl.map(|t| t.as_millis().min(i64::MAX as u128) as i64)
    }

    /// Check a declaration against the states declared so far: `Ok(Some(id))`
    /// if it is already declared (identically), `Ok(None)` if it is new.
    pub fn find_in<'a>(&self, declared: impl Iterator<Item = &'a StateDescriptor>) -> Result<Option<StateId>, crate::StateError> {
        if self.name.is_empty() {
            return Err(crate::StateError::EmptyName);
        }
        for (i, existing) in declared.enumerate() {
            if existing.name == self.name {
                if *existing != *self {
                    return Err(crate::StateError::Conflict {
                        name: self.name.clone(),
                        existing: existing.to_string(),
                        requested: self.to_string(),
                    });
                }
                return Ok(Some(i as StateId));
            }
        }
        Ok(None)
    }
}
