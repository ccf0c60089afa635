//! Typed keyed state. Values are encoded with postcard (compact, serde).

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wit::weir::operator::state as wit;
use crate::{Context, Error};

/// A state's name and options.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::StateOptions;
/// let opts = StateOptions::new("recent").ttl(Duration::from_secs(30 * 24 * 3600));
/// let plain: StateOptions = "count".into();
/// ```
#[derive(Clone, Debug)]
pub struct StateOptions {
    name: String,
    ttl: Option<Duration>,
}

impl StateOptions {
    pub fn new(name: &str) -> Self {
        StateOptions { name: name.to_string(), ttl: None }
    }

    /// Entries not written for `ttl` become invisible and are purged.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl From<&str> for StateOptions {
    fn from(name: &str) -> Self {
        StateOptions::new(name)
    }
}

/// How a [`ReducingState`] combines values.
pub use wit::Reducer;

fn declare(options: StateOptions, kind: wit::StateKind) -> Result<(u32, String), Error> {
    let d = wit::StateDescriptor {
        name: options.name.clone(),
        kind,
        ttl_ms: options.ttl.map(|t| t.as_millis() as u64),
    };
    wit::declare(&d).map(|id| (id, options.name)).map_err(Error::msg)
}

fn encode<T: Serialize + ?Sized>(name: &str, v: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(v).map_err(|e| Error::msg(format!("cannot encode a value of state '{name}': {e}")))
}

fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|e| {
        Error::msg(format!(
            "state '{name}' holds {} bytes that do not decode as {}: {e}",
            bytes.len(),
            std::any::type_name::<T>()
        ))
    })
}

/// One `T` per key. Reads fetch the values of all keys of the current batch in
/// one host call; writes go back in one call when the batch is done.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, total: &ValueState<f64>) -> Result<(), Error> {
/// let sum = total.get(ctx)?.unwrap_or(0.0) + 1.5;
/// total.set(ctx, &sum)?;
/// # Ok(()) }
/// ```
pub struct ValueState<T> {
    id: u32,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    pub(crate) fn declare(options: StateOptions) -> Result<Self, Error> {
        let (id, name) = declare(options, wit::StateKind::Value)?;
        Ok(ValueState { id, name, _t: PhantomData })
    }

    #[inline]
    pub fn get(&self, ctx: &Context) -> Result<Option<T>, Error> {
        ctx.with_column(self.id, |col, row| col.get(row).map(|b| decode(&self.name, b)).transpose())
    }

    #[inline]
    pub fn set(&self, ctx: &Context, value: &T) -> Result<(), Error> {
        // Small values encode on the stack (no allocation per record).
        let mut buf = [0u8; 64];
        match postcard::to_slice(value, &mut buf) {
            Ok(v) => ctx.with_column(self.id, |col, row| col.put(row, Some(v))),
            // Too large for the buffer (or not encodable: `encode` says why).
            Err(_) => {
                let v = encode(&self.name, value)?;
                ctx.with_column(self.id, |col, row| col.put(row, Some(&v)));
            }
        }
        Ok(())
    }

    pub fn clear(&self, ctx: &Context) {
        ctx.with_column(self.id, |col, row| col.put(row, None));
    }
}

/// A map from `K` to `V` per key.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, seen: &MapState<String, u32>) -> Result<(), Error> {
/// if seen.get(ctx, &"id-7".to_string())?.is_none() {
///     seen.put(ctx, &"id-7".to_string(), &1)?;
/// }
/// for (id, n) in seen.entries(ctx)? { let _ = (id, n); }
/// # Ok(()) }
/// ```
pub struct MapState<K, V> {
    id: u32,
    name: String,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> MapState<K, V> {
    pub(crate) fn declare(options: StateOptions) -> Result<Self, Error> {
        let (id, name) = declare(options, wit::StateKind::Map)?;
        Ok(MapState { id, name, _t: PhantomData })
    }

    pub fn get(&self, ctx: &Context, key: &K) -> Result<Option<V>, Error> {
        wit::map_get(self.id, ctx.scope(), &encode(&self.name, key)?).map(|b| decode(&self.name, &b)).transpose()
    }

    pub fn contains(&self, ctx: &Context, key: &K) -> Result<bool, Error> {
        Ok(wit::map_get(self.id, ctx.scope(), &encode(&self.name, key)?).is_some())
    }

    #[inline]
    pub fn put(&self, ctx: &Context, key: &K, value: &V) -> Result<(), Error> {
        wit::map_put(self.id, ctx.scope(), &encode(&self.name, key)?, &encode(&self.name, value)?);
        Ok(())
    }

    /// Remove an entry; returns whether it existed.
    pub fn remove(&self, ctx: &Context, key: &K) -> Result<bool, Error> {
        Ok(wit::map_remove(self.id, ctx.scope(), &encode(&self.name, key)?))
    }

    /// All entries, in no particular order.
    pub fn entries(&self, ctx: &Context) -> Result<Vec<(K, V)>, Error> {
        wit::map_entries(self.id, ctx.scope())
            .into_iter()
            .map(|(k, v)| Ok((decode(&self.name, &k)?, decode(&self.name, &v)?)))
            .collect()
    }

    pub fn clear(&self, ctx: &Context) {
        wit::clear(self.id, ctx.scope());
    }
}

/// A list of `T` per key.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, events: &ListState<i64>) -> Result<(), Error> {
/// events.add(ctx, &42)?;
/// let all: Vec<i64> = events.get(ctx)?;
/// events.update(ctx, &all[1..])?;
/// # Ok(()) }
/// ```
pub struct ListState<T> {
    id: u32,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ListState<T> {
    pub(crate) fn declare(options: StateOptions) -> Result<Self, Error> {
        let (id, name) = declare(options, wit::StateKind::List)?;
        Ok(ListState { id, name, _t: PhantomData })
    }

    #[inline]
    pub fn add(&self, ctx: &Context, value: &T) -> Result<(), Error> {
        wit::list_add(self.id, ctx.scope(), &encode(&self.name, value)?);
        Ok(())
    }

    pub fn get(&self, ctx: &Context) -> Result<Vec<T>, Error> {
        wit::list_get(self.id, ctx.scope()).iter().map(|b| decode(&self.name, b)).collect()
    }

    pub fn update(&self, ctx: &Context, values: &[T]) -> Result<(), Error> {
        let encoded = values.iter().map(|v| encode(&self.name, v)).collect::<Result<Vec<_>, _>>()?;
        wit::list_update(self.id, ctx.scope(), &encoded);
        Ok(())
    }

    pub fn clear(&self, ctx: &Context) {
        wit::clear(self.id, ctx.scope());
    }
}

/// One i64 per key, combined on the host: one host call per update.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, count: &ReducingState) {
/// let n: i64 = count.add(ctx, 1);
/// # }
/// ```
pub struct ReducingState {
    id: u32,
}

impl ReducingState {
    pub(crate) fn declare(options: StateOptions, reducer: Reducer) -> Result<Self, Error> {
        let (id, _) = declare(options, wit::StateKind::Reducing(reducer))?;
        Ok(ReducingState { id })
    }

    /// Combine `value` into the key's accumulator and return the result.
    pub fn add(&self, ctx: &Context, value: i64) -> i64 {
        wit::reducing_add(self.id, ctx.scope(), value)
    }

    pub fn get(&self, ctx: &Context) -> Option<i64> {
        wit::reducing_get(self.id, ctx.scope())
    }

    pub fn clear(&self, ctx: &Context) {
        wit::clear(self.id, ctx.scope());
    }
}
