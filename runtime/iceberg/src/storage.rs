//! The file IO of a SQL catalog's tables: local disk, confined to the
//! catalog's warehouse directory. Every path a table's metadata names (data
//! files, manifests, metadata files) is checked to lie under the warehouse, so
//! a table whose catalog entry points elsewhere cannot make a node read or
//! write outside the directories its specs may use. Whole-file writes
//! (metadata JSON, which the catalog's pointer then names) are written aside,
//! synced and renamed, so that the pointer never names a torn file.
//!
//! Built on iceberg's own local-disk storage (without OpenDAL, whose S3
//! support pulls a second TLS and crypto stack into every build).

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// Local disk under `root`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WarehouseFs {
    root: PathBuf,
}

impl WarehouseFs {
    pub fn new(root: PathBuf) -> Self {
        WarehouseFs { root }
    }

    /// `path` (`file:///…` or `/…`) as a local path, if it lies under the root.
    fn local(&self, path: &str) -> Result<PathBuf> {
        let p = path.strip_prefix("file://").or_else(|| path.strip_prefix("file:")).unwrap_or(path);
        let p = Path::new(p);
        let clean = p.is_absolute() && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean || !p.starts_with(&self.root) {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("{path} is outside the catalog's warehouse {}", self.root.display()),
            ));
        }
        Ok(p.to_path_buf())
    }

    fn inner() -> LocalFsStorage {
        LocalFsStorage::new()
    }
}

fn io_err(what: String, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unexpected, format!("{what}: {e}"))
}

#[async_trait]
#[typetag::serde]
impl Storage for WarehouseFs {
    async fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.local(path)?.exists())
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        self.local(path)?;
        Self::inner().metadata(path).await
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        self.local(path)?;
        Self::inner().read(path).await
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        self.local(path)?;
        Self::inner().reader(path).await
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let p = self.local(path)?;
        let dir = p.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
        let tmp = dir.join(format!(".{}.{}.tmp", p.file_name().and_then(|n| n.to_str()).unwrap_or("file"), uuid::Uuid::new_v4()));
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(format!("cannot create {}", tmp.display()), e))?;
        f.write_all(&bs).and_then(|_| f.sync_all()).map_err(|e| io_err(format!("cannot write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &p).map_err(|e| io_err(format!("cannot rename {} to {}", tmp.display(), p.display()), e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        self.local(path)?;
        Self::inner().writer(path).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.local(path)?;
        Self::inner().delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        self.local(path)?;
        Self::inner().delete_prefix(path).await
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(p) = paths.next().await {
            self.delete(&p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        self.local(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        self.local(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Builds a [`WarehouseFs`] for the catalog's file IO.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WarehouseFsFactory {
    pub root: PathBuf,
}

#[typetag::serde]
impl StorageFactory for WarehouseFsFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(WarehouseFs::new(self.root.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_warehouse_are_refused() {
        let fs = WarehouseFs::new(PathBuf::from("/data/wh"));
        assert_eq!(fs.local("file:///data/wh/db/t/metadata/v1.json").unwrap(), PathBuf::from("/data/wh/db/t/metadata/v1.json"));
        assert_eq!(fs.local("/data/wh/x.parquet").unwrap(), PathBuf::from("/data/wh/x.parquet"));
        for bad in ["/data/other/x", "file:///data/wh/../etc/passwd", "relative/x", "/data/whx/y"] {
            let e = fs.local(bad).unwrap_err().to_string();
            assert!(e.contains("outside the catalog's warehouse /data/wh"), "{bad}: {e}");
        }
    }
}
