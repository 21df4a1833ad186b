//! A thread delivered in any order lands on the same tickets (docs/contract.md: thread
//! resolution; messages referenced before they arrive are remembered).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::TestApp;

/// One message of a synthetic thread.
struct Msg {
    id: &'static str,
    from: &'static str,
    parent: Option<&'static str>,
}

/// Two conversations: a longer one with a branch, and a short unrelated one.
const THREAD: &[Msg] = &[
    Msg {
        id: "a1@customer.test",
        from: "alice@customer.test",
        parent: None,
    },
    Msg {
        id: "a2@customer.test",
        from: "bob@customer.test",
        parent: Some("a1@customer.test"),
    },
    Msg {
        id: "a3@customer.test",
        from: "alice@customer.test",
        parent: Some("a2@customer.test"),
    },
    Msg {
        id: "a4@customer.test",
        from: "bob@customer.test",
        parent: Some("a3@customer.test"),
    },
    Msg {
        id: "a5@customer.test",
        from: "alice@customer.test",
        parent: Some("a2@customer.test"),
    },
    Msg {
        id: "b1@customer.test",
        from: "bob@customer.test",
        parent: None,
    },
    Msg {
        id: "b2@customer.test",
        from: "alice@customer.test",
        parent: Some("b1@customer.test"),
    },
    Msg {
        id: "b3@customer.test",
        from: "bob@customer.test",
        parent: Some("b2@customer.test"),
    },
];

fn chain(id: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut cur = THREAD.iter().find(|m| m.id == id).and_then(|m| m.parent);
    while let Some(p) = cur {
        out.insert(0, p);
        cur = THREAD.iter().find(|m| m.id == p).and_then(|m| m.parent);
    }
    out
}

fn raw(m: &Msg) -> Vec<u8> {
    let mut headers = format!(
        "From: {}\nTo: support@example.test\nMessage-ID: <{}>\n",
        m.from, m.id
    );
    let ancestors = chain(m.id);
    if let Some(parent) = m.parent {
        headers.push_str(&format!("In-Reply-To: <{parent}>\n"));
        let refs: Vec<String> = ancestors.iter().map(|a| format!("<{a}>")).collect();
        headers.push_str(&format!("References: {}\n", refs.join(" ")));
    }
    let subject = if m.id.starts_with('a') {
        "Printer jams on page 2"
    } else {
        "Invoice address is wrong"
    };
    let prefix = if m.parent.is_some() { "Re: " } else { "" };
    format!("{headers}Subject: {prefix}{subject}\n\nMessage {}.\n", m.id).into_bytes()
}

/// Delivers in `order`; returns the partition of message ids into tickets.
async fn partition(order: &[usize]) -> BTreeSet<BTreeSet<&'static str>> {
    let app = TestApp::new().await;
    let mut by_ticket: BTreeMap<i64, BTreeSet<&'static str>> = BTreeMap::new();
    for &i in order {
        let report = app.deliver(&raw(&THREAD[i])).await;
        assert!(
            report.outcome.is_accepted(),
            "{} in order {order:?}: {report:?}",
            THREAD[i].id
        );
        by_ticket
            .entry(report.ticket.expect("accepted messages have a ticket"))
            .or_default()
            .insert(THREAD[i].id);
    }
    by_ticket.into_values().collect()
}

/// A small deterministic shuffle (xorshift), so failures reproduce.
fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    v
}

#[tokio::test]
async fn a_thread_lands_on_the_same_tickets_in_any_arrival_order() {
    let n = THREAD.len();
    let forward: Vec<usize> = (0..n).collect();
    let expected = partition(&forward).await;
    assert_eq!(
        expected.len(),
        2,
        "two conversations make two tickets: {expected:?}"
    );

    let mut orders = vec![forward.iter().rev().copied().collect::<Vec<_>>()];
    orders.extend((1..=6).map(|seed| shuffled(n, seed * 0x9E37_79B9)));
    for order in orders {
        assert_eq!(partition(&order).await, expected, "arrival order {order:?}");
    }
}

#[tokio::test]
async fn a_late_root_is_threaded_by_its_own_message_id() {
    let app = TestApp::new().await;
    let reply = app.deliver(&raw(&THREAD[1])).await;
    let root = app.deliver(&raw(&THREAD[0])).await;
    assert_eq!(root.ticket, reply.ticket);
    assert_eq!(
        root.thread_reason.as_deref(),
        Some("referenced_by <a1@customer.test>")
    );
    let ticket = app.ticket(reply.ticket.unwrap()).await;
    assert_eq!(ticket.comments.len(), 2);
}
