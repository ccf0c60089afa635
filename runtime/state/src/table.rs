//! The heap backend's hash table of one key group: keys to entries, open
//! addressing with linear probing, each slot holding its key's hash, the key
//! and the entry together.
//!
//! The caller hashes keys (the heap backend derives a key's table hash from
//! the same hash that picks its key group, so a key is hashed once per access)
//! and passes the hash with the key to every call; a table never mixes hashes
//! of two functions because its backend uses one.
//!
//! Why not `hashbrown`: with a state far larger than the CPU caches, every
//! lookup in it is two dependent memory misses (its control bytes, then the
//! bucket), and its API gives no address to prefetch. Here a key's first slot
//! is known from its hash alone, so a batch of keys can be prefetched before it
//! is read (`prefetch`): the misses of a whole batch overlap instead of coming
//! one after another. Deletion shifts the following slots back (no
//! tombstones), so probe sequences stay short at the load factor kept (≤ 3/4).

use smallvec::SmallVec;

/// A key, inline when short (no pointer to chase on lookups).
pub(crate) type Key = SmallVec<[u8; 24]>;

#[derive(Clone)]
struct Slot<V> {
    /// The key's hash; meaningless in an empty slot.
    hash: u64,
    kv: Option<(Key, V)>,
}

#[derive(Clone)]
pub(crate) struct Table<V> {
    /// A power of two long (or empty before the first insert).
    slots: Vec<Slot<V>>,
    len: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table { slots: Vec::new(), len: 0 }
    }
}

impl<V> Table<V> {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `key`, if any.
    #[inline]
    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            match &slot.kv {
                None => return None,
                Some((k, _)) if slot.hash == hash && k.as_slice() == key => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<&V> {
        let i = self.find(hash, key)?;
        self.slots[i].kv.as_ref().map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        let i = self.find(hash, key)?;
        self.slots[i].kv.as_mut().map(|(_, v)| v)
    }

    pub(crate) fn contains_key(&self, hash: u64, key: &[u8]) -> bool {
        self.find(hash, key).is_some()
    }

    /// Asks the CPU to load the first slot a key of `hash` would be in (a
    /// hint: never faults, does nothing on other targets).
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const Slot<V> = &self.slots[hash as usize & self.mask()];
        prefetch_lines(slot.cast(), size_of::<Slot<V>>());
    }

    /// `key`'s value, inserted by `init` if absent.
    pub(crate) fn get_or_insert_with(&mut self, hash: u64, key: &[u8], init: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(hash, key) {
            Some(i) => i,
            None => self.insert_new(hash, Key::from_slice(key), init()),
        };
        &mut self.slots[i].kv.as_mut().expect("an occupied slot").1
    }

    /// Sets `key`'s value, returning the one it replaces.
    pub(crate) fn insert(&mut self, hash: u64, key: Key, value: V) -> Option<V> {
        match self.find(hash, &key) {
            Some(i) => self.slots[i].kv.as_mut().map(|(_, v)| std::mem::replace(v, value)),
            None => {
                self.insert_new(hash, key, value);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, hash: u64, key: &[u8]) -> Option<V> {
        let mut hole = self.find(hash, key)?;
        let (_, value) = self.slots[hole].kv.take().expect("an occupied slot");
        self.len -= 1;
        // Shift back every following entry of the run that may move into the
        // hole (one whose first slot is not between the hole and itself).
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            if self.slots[i].kv.is_none() {
                break;
            }
            let home = self.slots[i].hash as usize & mask;
            if i.wrapping_sub(home) & mask >= i.wrapping_sub(hole) & mask {
                self.slots.swap(hole, i);
                hole = i;
            }
        }
        Some(value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.slots.iter().filter_map(|s| s.kv.as_ref().map(|(k, v)| (k, v)))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Puts a key known to be absent into its slot, growing first if the
    /// table would be over 3/4 full; returns the slot.
    fn insert_new(&mut self, hash: u64, key: Key, value: V) -> usize {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].kv.is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Slot { hash, kv: Some((key, value)) };
        self.len += 1;
        i
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, (0..size).map(|_| Slot { hash: 0, kv: None }).collect());
        let mask = size - 1;
        for slot in old {
            if let Some(kv) = slot.kv {
                let mut i = slot.hash as usize & mask;
                while self.slots[i].kv.is_some() {
                    i = (i + 1) & mask;
                }
                self.slots[i] = Slot { hash: slot.hash, kv: Some(kv) };
            }
        }
    }
}

/// Prefetches the cache lines of `len` bytes at `p` into every cache level.
#[inline]
fn prefetch_lines(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < len {
            // SAFETY: a prefetch is a hint; it never faults or reads into the
            // program, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast()) };
            off += 64;
        }
        // The slot may straddle one more line than its size covers.
        if (p as usize) % 64 != 0 {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(len).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The tests' key hash (any function will do; the same for every call).
    fn h(key: &[u8]) -> u64 {
        crate::keys::key_hash(key)
    }

    /// Random inserts, overwrites and removals against a BTreeMap; checks
    /// every key after each step's batch, including absent ones.
    #[test]
    fn behaves_as_a_map_through_inserts_overwrites_and_removals() {
        let mut t: Table<u64> = Table::default();
        let mut m: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..20_000u64 {
            let r = rand();
            // Few distinct keys, so removals hit and runs form; some longer
            // than the inline 24 bytes.
            let key = if r % 7 == 0 { format!("a-rather-long-key-that-spills-{}", r % 300) } else { format!("k{}", r % 300) };
            let key = key.into_bytes();
            if r % 3 == 0 {
                assert_eq!(t.remove(h(&key), &key), m.remove(&key), "remove {key:?} at step {step}");
            } else {
                assert_eq!(t.insert(h(&key), Key::from_slice(&key), step), m.insert(key.clone(), step), "insert at {step}");
            }
            assert_eq!(t.len(), m.len());
            if step % 1000 == 0 {
                for k in 0..300 {
                    for key in [format!("k{k}"), format!("a-rather-long-key-that-spills-{k}")] {
                        assert_eq!(t.get(h(key.as_bytes()), key.as_bytes()), m.get(key.as_bytes()), "get {key} at step {step}");
                        t.prefetch(h(key.as_bytes()));
                    }
                }
                let mut all: Vec<(Vec<u8>, u64)> = t.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
                all.sort();
                assert_eq!(all, m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
            }
        }
        // Empty it completely, then use it again.
        let keys: Vec<Vec<u8>> = m.keys().cloned().collect();
        for k in &keys {
            assert!(t.remove(h(k), k).is_some());
            assert!(!t.contains_key(h(k), k));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.iter().count(), 0);
        *t.get_or_insert_with(h(b"x"), b"x", || 1) += 1;
        *t.get_or_insert_with(h(b"x"), b"x", || 100) += 1;
        assert_eq!(t.get(h(b"x"), b"x"), Some(&3));
        *t.get_mut(h(b"x"), b"x").expect("present") = 7;
        assert_eq!(t.values().copied().collect::<Vec<_>>(), vec![7]);
    }

    /// Removal in a run that wraps around the end of the slots keeps every
    /// other key of the run reachable.
    #[test]
    fn removal_in_a_run_wrapping_around_the_end_keeps_the_rest_reachable() {
        let mut t: Table<u32> = Table::default();
        for i in 0..7u32 {
            t.insert(h(&i.to_le_bytes()), Key::from_slice(&i.to_le_bytes()), i);
        }
        // Force a run across the end: fill so that many keys collide there.
        let size = t.slots.len();
        let mut added = Vec::new();
        let mut n = 100u32;
        while added.len() < 3 {
            let key = n.to_le_bytes();
            if h(&key) as usize & (size - 1) == size - 1 {
                added.push(n);
            }
            n += 1;
        }
        for &a in &added {
            t.insert(h(&a.to_le_bytes()), Key::from_slice(&a.to_le_bytes()), a);
        }
        assert_eq!(t.slots.len(), size, "no growth in between");
        assert_eq!(t.remove(h(&added[0].to_le_bytes()), &added[0].to_le_bytes()), Some(added[0]));
        for &a in &added[1..] {
            assert_eq!(t.get(h(&a.to_le_bytes()), &a.to_le_bytes()), Some(&a));
        }
        for i in 0..7u32 {
            assert_eq!(t.get(h(&i.to_le_bytes()), &i.to_le_bytes()), Some(&i));
        }
    }
}
