//! Where raw messages come from: files, folders, Maildir, mbox, stdin (and, with
//! the IMAP issue, IMAP). A source hands bytes to `ingest` and acknowledges
//! only after the outcome is committed.

pub mod imap;
pub mod maildir;
pub mod mbox;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One message to read, found by walking the CLI's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    File(PathBuf),
    /// A byte range of an mbox file (the `From ` line excluded).
    MboxMessage {
        path: PathBuf,
        index: usize,
        start: u64,
        end: u64,
    },
}

impl Item {
    /// The origin recorded in the ingest log.
    pub fn origin(&self) -> String {
        match self {
            Item::File(p) => format!("file:{}", p.display()),
            Item::MboxMessage { path, index, .. } => {
                format!("mbox:{}#{}", path.display(), index + 1)
            }
        }
    }

    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Item::File(p) => std::fs::read(p),
            Item::MboxMessage {
                path, start, end, ..
            } => {
                let mut f = std::fs::File::open(path)?;
                f.seek(SeekFrom::Start(*start))?;
                let mut buf = Vec::with_capacity((end - start) as usize);
                f.take(end - start).read_to_end(&mut buf)?;
                Ok(mbox::unescape(&buf))
            }
        }
    }
}

fn is_mbox(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 5];
    let mut f = std::fs::File::open(path)?;
    let n = f.read(&mut head)?;
    Ok(n == 5 && &head == b"From ")
}

/// Visible regular files of a folder, in file-name order (Maildir names are time-ordered).
fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        files.push(entry.path());
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Expands the CLI's paths: a Maildir (its `cur/` and `new/` together, by name),
/// a folder of files, an mbox file, or a single message file.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<Item>> {
    let mut items = Vec::new();
    for path in paths {
        if path.is_dir() {
            if maildir::is_maildir(path) {
                let mut files = files_in(&path.join("cur"))?;
                files.extend(files_in(&path.join("new"))?);
                files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
                items.extend(files.into_iter().map(Item::File));
            } else {
                for file in files_in(path)? {
                    push_file(&mut items, file)?;
                }
            }
        } else {
            push_file(&mut items, path.clone())?;
        }
    }
    Ok(items)
}

fn push_file(items: &mut Vec<Item>, path: PathBuf) -> std::io::Result<()> {
    if is_mbox(&path)? {
        for (index, (start, end)) in mbox::scan(&path)?.into_iter().enumerate() {
            items.push(Item::MboxMessage {
                path: path.clone(),
                index,
                start,
                end,
            });
        }
    } else {
        items.push(Item::File(path));
    }
    Ok(())
}
