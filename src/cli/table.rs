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

/// One line of a ticket's history in words (`ticket show`); a row this
/// version cannot read prints with its data as recorded.
pub(super) fn describe_event(e: &crate::store::EventView, settings: &Settings) -> String {
    use crate::domain::event::{Event, Recorded};
    let event = match &e.event {
        Recorded::Known(event) => event,
        Recorded::Unread { kind, data } => return format!("{} {data}", kind.replace('_', " ")),
    };
    match event {
        Event::TicketCreated { subject, .. } => format!("opened the ticket: {subject}"),
        Event::CommentAdded {
            comment, internal, ..
        } => format!(
            "added {}comment {comment}",
            if *internal { "an internal " } else { "" }
        ),
        Event::StatusChanged {
            from, to, reason, ..
        } => format!(
            "changed the status from {} to {}{}",
            settings.status_label(*from),
            settings.status_label(*to),
            reason.map_or_else(String::new, |r| format!(
                " ({})",
                crate::domain::terms::close_reason_label(r, Default::default())
            ))
        ),
        Event::PrioritySet { priority, .. } => format!("set the priority to {priority}"),
        Event::ReleaseNoted { release } => format!("noted release {release}"),
        Event::FollowerAdded { email, source } => format!("added follower {email} ({source})"),
        Event::FollowerRemoved { email } => format!("removed follower {email}"),
        Event::OrgAdded { org } => format!("shared the ticket with organization {org}"),
        Event::OrgRemoved { org } => format!("unshared the ticket from organization {org}"),
        Event::Mentioned { email } => format!("mentioned {email}"),
        Event::RecipientBouncing { email, .. } => format!("mail to {email} bounced"),
        Event::OwnerSet { email } => format!("assigned the ticket to {email}"),
        Event::OwnerCleared { email } => format!("unassigned {email}"),
        Event::TicketMerged { from, into } => format!("merged ticket {from} into ticket {into}"),
        Event::CommentMoved { comment, from, to } => {
            format!("moved comment {comment} from ticket {from} to ticket {to}")
        }
        Event::ClockWarned { clock, due } => format!("{clock} clock warned, due {due}"),
        Event::ClockBreached { clock, due } => format!("{clock} clock breached, was due {due}"),
        Event::ReminderSent { rule, template } => format!("sent {template} (rule: {rule})"),
        Event::PersonErased { person } => format!("erased the personal data of {person}"),
    }
}
