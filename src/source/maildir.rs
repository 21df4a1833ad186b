//! Maildir (the embedded default inbox): new mail appears in `new/`; after its
//! outcome is committed the file moves to `cur/` with the `S` (seen) flag, as a
//! mail client would, so the inbox shows what is done and nothing is deleted.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use super::{Bounded, Limits, read_bounded};

/// A folder with `new/` or `cur/`: a Maildir written by hand (or by `cp` and
/// `mv`, as the README does) may not have both yet.
pub fn is_maildir(path: &Path) -> bool {
    path.join("new").is_dir() || path.join("cur").is_dir()
}

#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates `new/`, `cur/` and `tmp/` if missing.
    pub fn ensure(&self) -> std::io::Result<()> {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(self.root.join(sub))?;
        }
        Ok(())
    }

    /// Messages waiting in `new/`, oldest first (names start with a timestamp).
    pub fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.root.join("new"))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                !e.file_name().to_string_lossy().starts_with('.')
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
            .map(|e| e.path())
            .collect();
        files.sort();
        Ok(files)
    }

    /// Opens, locks and reads (within `limits`) a message of `new/`.
    /// `Ok(None)` when another process polling this Maildir has it: locked,
    /// or moved by the time the lock was ours. The lock (flock) lasts until
    /// the `Claimed` is dropped, so the caller keeps it until the file moved.
    pub fn claim(&self, path: &Path, limits: Limits) -> std::io::Result<Option<Claimed>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // Opened before the holder moved it and unlocked: it is done.
        if !path.exists() {
            return Ok(None);
        }
        let size = file.metadata()?.len();
        let read = read_bounded(&file, Some(size), limits)?;
        Ok(Some(Claimed { _lock: file, read }))
    }

    /// Moves a message that keeps failing out of `new/` into `failed/`
    /// (created beside `cur/`, `new/` and `tmp/` when first needed), where
    /// it waits for a person and blocks nothing.
    pub fn move_failed(&self, path: &Path) -> std::io::Result<PathBuf> {
        let dir = self.root.join("failed");
        std::fs::create_dir_all(&dir)?;
        let target = dir.join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &target)?;
        Ok(target)
    }

    /// Moves a processed message from `new/` to `cur/` with the `S` flag.
    pub fn mark_seen(&self, path: &Path) -> std::io::Result<PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = self.root.join("cur").join(seen_name(&name));
        std::fs::rename(path, &target)?;
        Ok(target)
    }
}

/// A message of `new/` this process has locked and read.
#[derive(Debug)]
pub struct Claimed {
    /// Held (flock) until the message has moved out of `new/`.
    _lock: File,
    pub read: Bounded,
}

/// `unique` → `unique:2,S`; `unique:2,FR` → `unique:2,FRS` (flags kept sorted).
pub fn seen_name(name: &str) -> String {
    match name.split_once(":2,") {
        Some((base, flags)) => {
            let mut flags: Vec<char> = flags.chars().filter(|c| c.is_ascii_alphabetic()).collect();
            if !flags.contains(&'S') {
                flags.push('S');
            }
            flags.sort_unstable();
            flags.dedup();
            format!("{base}:2,{}", flags.into_iter().collect::<String>())
        }
        None => format!("{name}:2,S"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_names_follow_maildir_info_rules() {
        assert_eq!(
            seen_name("1700000000.M1P2.host"),
            "1700000000.M1P2.host:2,S"
        );
        assert_eq!(seen_name("x:2,FR"), "x:2,FRS");
        assert_eq!(seen_name("x:2,S"), "x:2,S");
    }

    #[test]
    fn processed_messages_move_to_cur() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path());
        md.ensure().unwrap();
        std::fs::write(dir.path().join("new/2"), "b").unwrap();
        std::fs::write(dir.path().join("new/1"), "a").unwrap();
        let pending = md.pending().unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|p| p.file_name().unwrap().to_str().unwrap())
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        let moved = md.mark_seen(&pending[0]).unwrap();
        assert_eq!(moved, dir.path().join("cur/1:2,S"));
        assert_eq!(md.pending().unwrap().len(), 1);
    }
}
