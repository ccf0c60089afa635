//! On-disk cache of compiled components, keyed by the component's sha256 and the
//! engine's compatibility hash (wasmtime version and settings).
//!
//! Deserializing a compiled artifact trusts its machine code, so an entry is
//! authenticated before use: a file is [`MAGIC`], an HMAC-SHA256 of its name
//! and artifact, then the artifact. The HMAC key is a random secret of the
//! cache directory ([`KEY_FILE`], 0600, made on first use). An entry that does
//! not verify (corrupt, truncated, written by someone without the key, or
//! another plugin's entry under this name) is deleted and recompiled.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The start of every entry (format version 1).
const MAGIC: &[u8; 8] = b"weircw1\n";
const MAC_LEN: usize = 32;
/// The cache directory's HMAC key.
const KEY_FILE: &str = "cache.key";

/// A cache directory and its key.
pub(crate) struct Cache {
    dir: PathBuf,
    key: [u8; 32],
    engine_key: String,
}

impl Cache {
    /// The cache in `dir`, creating the directory and its key if needed;
    /// `None` (with a warning) if that fails: plugins are then compiled each time.
    pub fn open(dir: PathBuf, engine: &Engine) -> Option<Cache> {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = format!("{:016x}", h.finish());
        match cache_key(&dir) {
            Ok(key) => Some(Cache { dir, key, engine_key }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "compiled plugins are not cached: cannot set up the cache key: {e}");
                None
            }
        }
    }

    fn name(&self, digest: &str) -> String {
        format!("{digest}-{}.cwasm", self.engine_key)
    }

    fn mac(&self, name: &str, artifact: &[u8]) -> [u8; MAC_LEN] {
        hmac_sha256(&self.key, &[name.as_bytes(), b"\0", artifact])
    }

    /// The cached compilation of the component with `digest`, if there is one
    /// that verifies; one that does not is deleted.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let name = self.name(digest);
        let path = self.dir.join(&name);
        // Read, not mmap: a file changed in place under a mapping would crash the host.
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read compiled plugin cache entry: {e}");
                return None;
            }
        };
        // An older weir's entry (no header) is replaced quietly; one with the
        // header that does not verify is news.
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            tracing::debug!(path = %path.display(), "replacing a compiled plugin cache entry of another format");
            remove(&path);
            return None;
        };
        let (mac, artifact) = rest.split_at(rest.len().min(MAC_LEN));
        if !same(mac, &self.mac(&name, artifact)) {
            tracing::warn!(
                path = %path.display(),
                "compiled plugin cache entry does not verify (corrupt, or not written with this cache's key): deleting it and recompiling"
            );
            remove(&path);
            return None;
        }
        // SAFETY: the bytes are what `store` wrote from `Component::serialize`
        // with this engine configuration (the name includes its compatibility
        // hash): their HMAC under this cache's secret key verified. wasmtime
        // also checks the artifact's header and refuses mismatching ones.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "deleting unusable compiled plugin cache entry: {e}");
                remove(&path);
                None
            }
        }
    }

    /// Store a compilation atomically (write then rename). Failures only cost
    /// a recompile next time, so they are logged, not returned.
    pub fn store(&self, component: &Component, digest: &str) {
        let name = self.name(digest);
        let path = self.dir.join(&name);
        let result = (|| -> std::io::Result<()> {
            let artifact = component.serialize().map_err(std::io::Error::other)?;
            let tmp = self.dir.join(format!(".{name}.tmp{}", std::process::id()));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&self.mac(&name, &artifact))?;
            f.write_all(&artifact)?;
            drop(f);
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {e}");
        }
    }
}

/// Delete an entry (another process may have done so already).
fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "cannot delete compiled plugin cache entry: {e}");
    }
}

/// The key of the cache in `dir`: read, or made (32 random bytes, 0600). A key
/// of the wrong size or readable by others is replaced, which invalidates
/// every entry made with it.
fn cache_key(dir: &Path) -> std::io::Result<[u8; 32]> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(KEY_FILE);
    match read_key(&path) {
        Ok(key) => return Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), "replacing the compiled plugin cache key: {e}");
            std::fs::remove_file(&path)?;
        }
    }
    let mut key = [0u8; 32];
    wasmtime_wasi::Rng::fill_bytes(&mut *wasmtime_wasi::thread_rng(), &mut key);
    let tmp = dir.join(format!(".{KEY_FILE}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = std::fs::remove_file(&tmp);
    options.open(&tmp)?.write_all(&key)?;
    // Link, not rename: if another process made a key meanwhile, use that one.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
        Err(e) => Err(e),
    }
}

fn read_key(path: &Path) -> std::io::Result<[u8; 32]> {
    let bytes = std::fs::read(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!("it is readable or writable by others (mode {:o})", mode & 0o777)));
        }
    }
    bytes.try_into().map_err(|b: Vec<u8>| std::io::Error::other(format!("it has {} bytes, not 32", b.len())))
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under a 32-byte key.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = Sha256::new().chain_update(ipad);
    for p in parts {
        inner.update(p);
    }
    Sha256::new().chain_update(opad).chain_update(inner.finalize()).finalize().into()
}

/// Equality in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2 has a 4-byte key; HMAC pads keys with zeros,
        // so the same key zero-padded to 32 bytes gives the same MAC.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
