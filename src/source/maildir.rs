//! Maildir (the embedded default inbox): new mail appears in `new/`; after its
//! outcome is committed the file moves to `cur/` with the `S` (seen) flag, as a
//! mail client would, so the inbox shows what is done and nothing is deleted.

use std::path::{Path, PathBuf};

pub fn is_maildir(path: &Path) -> bool {
    path.join("new").is_dir() && path.join("cur").is_dir()
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
