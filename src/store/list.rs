//! The ticket lists' statement, built from the filters a caller gave: one
//! condition per filter, each written so an index answers it, and only
//! the given values bound. A condition written for every filter, `($1 IS
//! NULL OR t.status = $1)`, is planned once for all of them: SQLite then
//! walked every ticket in id order, and PostgreSQL's generic plan did too.
//!
//! Portable SQL, for both backends, as in `sql`. The statements are
//! interned: a list has finitely many shapes (which filters are given, and
//! the order), and each backend keeps a prepared statement per text.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use super::read::Arg;
use super::sql;
use super::{OwnerFilter, TicketFilter};
use crate::domain::ticket::Status;

/// A WHERE under construction: its conditions and what they bind.
struct Where<'a> {
    conditions: Vec<String>,
    args: Vec<Arg<'a>>,
}

impl<'a> Where<'a> {
    /// `arg` as the next parameter: its `$N`.
    fn bind(&mut self, arg: Arg<'a>) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }
}

/// The statement that lists `f` and its arguments; `pattern` is the LIKE
/// pattern of `f.text`. The order and paging are `TicketFilter`'s: id order
/// after `after` (0 when none), or by last update or next due time,
/// skipping `skip`.
pub(super) fn tickets<'a>(
    f: &'a TicketFilter,
    pattern: Option<&'a str>,
) -> (&'static str, Vec<Arg<'a>>) {
    let mut w = Where {
        conditions: Vec::new(),
        args: Vec::new(),
    };
    if let Some(status) = f.status {
        let s = w.bind(status.as_str().into());
        w.and(format!("t.status = {s}"));
    }
    match f.open {
        Some(true) => w.and(format!("t.status IN {}", sql::OPEN_STATUSES)),
        Some(false) => w.and(format!("t.status IN {}", closed_statuses())),
        None => {}
    }
    if let Some(org) = &f.org {
        let o = w.bind(org.as_str().into());
        w.and(format!(
            "t.id IN (SELECT x.ticket_id FROM ticket_orgs x WHERE x.org_id IN \
             (SELECT xo.id FROM orgs xo WHERE xo.slug = {o} OR lower(xo.name) = lower({o})))"
        ));
    }
    if let Some(requester) = &f.requester {
        let r = w.bind(requester.as_str().into());
        w.and(format!(
            "t.requester_id = (SELECT ru.id FROM users ru WHERE ru.email = {r})"
        ));
    }
    if let Some(priority) = f.priority {
        let p = w.bind(priority.as_str().into());
        w.and(format!("t.priority = {p}"));
    }
    if let Some(pattern) = pattern {
        // No index answers a piece of the subject: this reads the tickets
        // the other conditions leave (all of them when there are none).
        let p = w.bind(Arg::Input(Some(pattern)));
        w.and(format!("lower(t.subject) LIKE lower({p}) ESCAPE '\\'"));
    }
    if let Some(v) = f.visible_to {
        // Requested, followed, or attached to their organization: three
        // index lookups (`tickets_requester`, `followers_user`,
        // `ticket_orgs_org`) whose ids select the tickets.
        let u = w.bind(v.user.into());
        let mut ids = format!(
            "SELECT vr.id FROM tickets vr WHERE vr.requester_id = {u} \
             UNION ALL SELECT vf.ticket_id FROM followers vf WHERE vf.user_id = {u}"
        );
        if let Some(org) = v.org {
            let o = w.bind(org.into());
            ids.push_str(&format!(
                " UNION ALL SELECT vx.ticket_id FROM ticket_orgs vx WHERE vx.org_id = {o}"
            ));
        }
        w.and(format!("t.id IN ({ids})"));
    }
    match &f.owner {
        Some(OwnerFilter::Is(email)) => {
            let e = w.bind(email.as_str().into());
            w.and(format!(
                "t.owner_id = (SELECT ou.id FROM users ou WHERE ou.email = {e})"
            ));
        }
        Some(OwnerFilter::Nobody) => w.and("t.owner_id IS NULL".into()),
        None => {}
    }
    if let Some(at) = f.breached_at {
        let at = w.bind(at.into());
        w.and(format!(
            "t.status IN {} AND ((t.responded_at IS NULL AND t.response_due <= {at}) \
             OR t.resolve_due <= {at})",
            sql::OPEN_STATUSES
        ));
    }
    let order = if f.by_due || f.newest_first {
        let limit = w.bind(Arg::Limit(f.limit));
        let skip = w.bind(f.skip.max(0).into());
        if f.by_due {
            let due = sql::NEXT_DUE;
            format!(" ORDER BY {due} IS NULL, {due}, t.id LIMIT {limit} OFFSET {skip}")
        } else {
            if let Some((at, id)) = f.updated_before {
                let (at, id) = (w.bind(at.into()), w.bind(id.into()));
                w.and(format!(
                    "(t.updated_at < {at} OR (t.updated_at = {at} AND t.id < {id}))"
                ));
            }
            format!(" ORDER BY t.updated_at DESC, t.id DESC LIMIT {limit} OFFSET {skip}")
        }
    } else {
        let after = w.bind(f.after.unwrap_or(0).into());
        w.and(format!("t.id > {after}"));
        let limit = w.bind(Arg::Limit(f.limit));
        format!(" ORDER BY t.id LIMIT {limit}")
    };
    let mut text = String::from(sql::TICKET_SUMMARIES);
    for (i, condition) in w.conditions.iter().enumerate() {
        text.push_str(if i == 0 { " WHERE " } else { " AND " });
        text.push_str(condition);
    }
    text.push_str(&order);
    (intern(text), w.args)
}

/// `('closed', 'escalated')`: the statuses `Status::is_open` says are not.
fn closed_statuses() -> &'static str {
    static CLOSED: OnceLock<String> = OnceLock::new();
    CLOSED.get_or_init(|| {
        let names: Vec<String> = Status::ALL
            .iter()
            .filter(|s| !s.is_open())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!("({})", names.join(", "))
    })
}

/// The one copy of a statement's text. Kept for the process's life: there
/// are at most a few thousand shapes, and in use a handful.
fn intern(text: String) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(known) = seen.get(text.as_str()) {
        return known;
    }
    let text: &'static str = Box::leak(text.into_boxed_str());
    seen.insert(text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Visibility;

    #[test]
    fn the_open_and_closed_statuses_split_every_status() {
        let listed = format!("{} {}", sql::OPEN_STATUSES, closed_statuses());
        for s in Status::ALL {
            assert_eq!(
                listed.matches(&format!("'{}'", s.as_str())).count(),
                1,
                "{s} in {listed}"
            );
            assert_eq!(
                sql::OPEN_STATUSES.contains(&format!("'{}'", s.as_str())),
                s.is_open(),
                "{s}"
            );
        }
    }

    /// Only the given filters are in the statement, each bound once, and
    /// numbered in order.
    #[test]
    fn a_list_binds_only_the_filters_given() {
        let all = TicketFilter::default();
        let (text, args) = tickets(&all, None);
        assert!(
            text.ends_with("WHERE t.id > $1 ORDER BY t.id LIMIT $2"),
            "{text}"
        );
        assert_eq!(args.len(), 2);
        let f = TicketFilter {
            status: Some(Status::New),
            visible_to: Some(Visibility { user: 7, org: None }),
            newest_first: true,
            ..Default::default()
        };
        let (text, args) = tickets(&f, None);
        assert!(text.contains("t.status = $1"), "{text}");
        assert!(text.contains("vf.user_id = $2"), "{text}");
        assert!(!text.contains("ticket_orgs vx"), "{text}");
        assert!(text.ends_with("LIMIT $3 OFFSET $4"), "{text}");
        assert_eq!(args.len(), 4);
        assert!(std::ptr::eq(text, tickets(&f, None).0), "interned");
    }
}
