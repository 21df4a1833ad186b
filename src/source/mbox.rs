//! mbox files (RFC 4155): messages separated by `From ` lines. Scanned for
//! offsets first so that a large archive is never held in memory at once.

use std::io::{BufRead, BufReader};
use std::path::Path;

/// Byte ranges `[start, end)` of each message body, `From ` separator excluded.
pub fn scan(path: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    let mut ranges = Vec::new();
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut start: Option<u64> = None;
    let mut previous_blank = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)? as u64;
        if n == 0 {
            break;
        }
        // A separator is a `From ` line at the start or after a blank line.
        if previous_blank && is_separator(&line) {
            if let Some(s) = start {
                ranges.push((s, trim_separator_newline(s, offset)));
            }
            start = Some(offset + n);
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        offset += n;
    }
    if let Some(s) = start
        && offset > s
    {
        ranges.push((s, offset));
    }
    Ok(ranges)
}

/// `From sender date` (RFC 4155): the date carries a time and a year, which an
/// unescaped body line such as "From here on" rarely does.
fn is_separator(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let text = String::from_utf8_lossy(rest);
    let mut words = text.split_whitespace();
    let has_sender = words.next().is_some();
    let date: Vec<&str> = words.collect();
    has_sender
        && date
            .iter()
            .any(|w| w.contains(':') && w.chars().all(|c| c.is_ascii_digit() || c == ':'))
        && date
            .iter()
            .any(|w| w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()))
}

/// The blank line before a separator belongs to the format, not the message.
fn trim_separator_newline(start: u64, end: u64) -> u64 {
    if end > start { end - 1 } else { end }
}

/// Undoes mboxrd quoting: `>From ` → `From `, `>>From ` → `>From `.
pub fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        let depth = line.iter().take_while(|&&b| b == b'>').count();
        if depth > 0 && line[depth..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_split_at_from_lines_and_unescaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        std::fs::write(
            &path,
            "From a@x Mon Nov 23 09:00:00 2026\nSubject: one\n\nFrom here on\n>From the start\n\nFrom b@x Mon Nov 23 09:01:00 2026\nSubject: two\n\nbody\n",
        )
        .unwrap();
        let ranges = scan(&path).unwrap();
        assert_eq!(ranges.len(), 2);
        let data = std::fs::read(&path).unwrap();
        let first = unescape(&data[ranges[0].0 as usize..ranges[0].1 as usize]);
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "Subject: one\n\nFrom here on\nFrom the start\n"
        );
        let second = &data[ranges[1].0 as usize..ranges[1].1 as usize];
        assert_eq!(second, b"Subject: two\n\nbody\n");
    }
}
