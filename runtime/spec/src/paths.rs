//! Which files a spec sent to a node may read and write: only those under the
//! node's allowed roots (`weir serve --allow-path`, by default its data
//! directory). A path is resolved as a connector will open it (relative paths
//! from the node's working directory), following the symlinks of the part that
//! exists and applying `..` after them as the kernel would, so that no
//! spelling of a path (`root/../etc`, a link inside a root pointing out of it)
//! leaves a root. Specs run locally (`weir run`) have no such limit.

use std::path::{Component, Path, PathBuf};

/// The roots a node's specs may use.
#[derive(Clone, Debug)]
pub struct PathPolicy {
    roots: Vec<PathBuf>,
}

impl PathPolicy {
    /// Only paths under `roots` (each resolved now, so a root given through a
    /// symlink still matches the paths under it).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> Result<Self, String> {
        let mut resolved = Vec::new();
        for r in roots {
            resolved.push(resolve(&r).map_err(|e| format!("cannot resolve the allowed path {}: {e}", r.display()))?);
        }
        if resolved.is_empty() {
            return Err("a node needs at least one directory its specs may use".into());
        }
        Ok(PathPolicy { roots: resolved })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// `path`, resolved, if it lies under one of the roots; otherwise a
    /// message naming the path and the roots.
    pub fn check(&self, path: &Path) -> Result<PathBuf, String> {
        let resolved = resolve(path).map_err(|e| format!("cannot resolve '{}': {e}", path.display()))?;
        if self.roots.iter().any(|r| resolved.starts_with(r)) {
            return Ok(resolved);
        }
        let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        let shown = if resolved.as_path() == path { String::new() } else { format!(" (that is {})", resolved.display()) };
        Err(format!(
            "'{}'{shown} is outside the directories specs may use on this node ({}); the node's operator can allow more with `weir serve --allow-path DIR`",
            path.display(),
            roots.join(", ")
        ))
    }

    /// Like [`PathPolicy::check`] for a location that may be a URL: local
    /// paths and `file://` URLs are checked, other URLs (`s3://…`) are not
    /// files of this machine.
    pub fn check_location(&self, location: &str) -> Result<(), String> {
        match location.split_once("://") {
            Some(("file", rest)) => self.check(Path::new(rest)).map(|_| ()),
            Some((scheme, _)) if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') => Ok(()),
            _ => self.check(Path::new(location)).map(|_| ()),
        }
    }
}

/// `path` made absolute, with every existing component's symlinks followed
/// and `.`/`..` applied; components that do not exist yet (an output
/// directory to be created) are appended as written.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut cur = if path.is_absolute() { PathBuf::from("/") } else { std::env::current_dir()?.canonicalize()? };
    // Once a component does not exist, none after it does: no more symlinks.
    let mut exists = true;
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {}
            Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(name) => {
                cur.push(name);
                if exists {
                    match cur.canonicalize() {
                        Ok(real) => cur = real,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => exists = std::fs::symlink_metadata(&cur).is_ok(),
                        Err(e) => return Err(e),
                    }
                    if !exists {
                        continue;
                    }
                    // A dangling symlink: refuse rather than guess where it goes.
                    if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                        return Err(std::io::Error::other(format!("{} is a symlink to nowhere", cur.display())));
                    }
                }
            }
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_a_root_pass_and_every_way_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::write(root.join("in/a.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        std::os::unix::fs::symlink(root.join("in"), dir.path().join("outside-link-to-in")).unwrap();
        let p = PathPolicy::new([root.clone()]).unwrap();

        assert!(p.check(&root.join("in/a.txt")).is_ok());
        assert!(p.check(&root.join("out/new/part")).is_ok(), "a directory to be created");
        assert!(p.check(&root.join("in/../in/a.txt")).is_ok());
        // A link from outside into a root is fine: what counts is where it goes.
        assert!(p.check(&dir.path().join("outside-link-to-in/a.txt")).is_ok());

        let e = p.check(Path::new("/etc/passwd")).unwrap_err();
        assert!(e.starts_with("'/etc/passwd' is outside the directories specs may use on this node ("), "{e}");
        assert!(e.contains(&root.canonicalize().unwrap().display().to_string()) && e.contains("--allow-path"), "{e}");
        let e = p.check(&root.join("../../../../etc/passwd")).unwrap_err();
        assert!(e.contains("(that is /etc/passwd)"), "{e}");
        let e = p.check(&root.join("etc-link/passwd")).unwrap_err();
        assert!(e.contains("(that is /etc/passwd)"), "{e}");
        // `..` after a link goes up from the link's target, as the kernel does.
        assert!(p.check(&root.join("etc-link/../tmp")).is_err());
        assert!(p.check(&root.join("nothing/../../x")).is_err());
        // A sibling whose name starts like the root is not under it.
        assert!(p.check(&dir.path().join("data2/x")).is_err());
        assert!(p.check(Path::new("relative/to/cwd")).is_err());

        assert!(p.check_location("s3://bucket/state").is_ok());
        assert!(p.check_location("file:///etc").is_err());
        assert!(p.check_location(&format!("file://{}/state", root.display())).is_ok());
        assert!(PathPolicy::new([]).is_err());
    }
}
