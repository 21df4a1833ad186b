//! Output for people: padded tables, short times, event descriptions
//! (scripts use `--json`).

use super::*;

/// A table for people: a header row, then columns padded to their widest cell
/// (scripts use `--json`).
pub(super) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub(super) fn row<const N: usize>(&mut self, cells: [String; N]) {
        // A mail subject or a name must not break the row or the columns.
        self.rows.push(
            cells
                .into_iter()
                .map(|c| c.replace(char::is_control, " "))
                .collect(),
        );
    }

    /// Prints the table, or `empty` alone when it has no rows.
    pub(super) fn print(self, empty: &str) {
        if self.rows.len() == 1 {
            println!("({empty})");
            return;
        }
        let columns = self.rows[0].len();
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = std::io::stdout().lock();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // A closed pipe (`| head`) ends the listing quietly.
            if writeln!(out, "{}", line.trim_end()).is_err() {
                return;
            }
        }
    }
}

/// `2026-12-02T14:23:48.324148Z` as `2026-12-02 14:23:48` (UTC, as stored);
/// anything else as it is.
pub(super) fn short_time(stored: &str) -> String {
    match stored.get(..19) {
        Some(head) if stored.as_bytes().get(10) == Some(&b'T') => head.replacen('T', " ", 1),
        _ => stored.to_string(),
    }
}

pub(super) fn or_dash(items: Vec<String>) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// One line of a ticket's history in words (`ticket show`); kinds this does
/// not know print with their data as recorded.
pub(super) fn describe_event(e: &crate::store::EventView, settings: &Settings) -> String {
    let text = |key: &str| e.data.get(key).and_then(|v| v.as_str()).unwrap_or("?");
    let label = |key: &str| {
        e.data
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Status>().ok())
            .map(|s| settings.status_label(s))
            .unwrap_or_else(|| text(key).to_string())
    };
    match e.kind.as_str() {
        "ticket_created" => format!("opened the ticket: {}", text("subject")),
        "comment_added" => {
            let internal = e.data.get("internal").and_then(|v| v.as_bool()) == Some(true);
            format!(
                "added {}comment {}",
                if internal { "an internal " } else { "" },
                e.data
                    .get("comment")
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            )
        }
        "status_changed" => format!(
            "changed the status from {} to {}",
            label("from"),
            label("to")
        ),
        "priority_set" => format!("set the priority to {}", text("priority")),
        "release_noted" => format!("noted release {}", text("release")),
        "follower_added" => format!("added follower {} ({})", text("email"), text("source")),
        "follower_removed" => format!("removed follower {}", text("email")),
        "org_added" => format!("shared the ticket with organization {}", text("org")),
        "org_removed" => format!("unshared the ticket from organization {}", text("org")),
        "mentioned" => format!("mentioned {}", text("email")),
        "recipient_bouncing" => format!("mail to {} bounced", text("email")),
        other => format!("{} {}", other.replace('_', " "), e.data),
    }
}
