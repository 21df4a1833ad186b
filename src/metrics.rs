//! Process metrics in the Prometheus text format (`GET /metrics`), names
//! prefixed `ticketgate_`. Counters and histograms live in the process (they
//! reset on restart, as Prometheus expects); the outbox depth and mailbox
//! states are read at scrape time, so they are right whichever instance is asked.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::outcome::Outcome;
use crate::health::StoreState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpenLabels {
    status: String,
    /// `P1`…`P4`, or `none`.
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClockLabels {
    clock: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxLabels {
    mailbox: String,
    state: String,
}

/// Everything `/metrics` reports. Cheap to update from any task.
pub struct Metrics {
    registry: Mutex<Registry>,
    messages: Family<OutcomeLabels, Counter>,
    ingest_seconds: Histogram,
    http_requests: Family<HttpLabels, Counter>,
    outbox: Family<StatusLabels, Gauge>,
    mailboxes: Family<MailboxLabels, Gauge>,
    store: Family<StoreLabels, Gauge>,
    open_tickets: Family<OpenLabels, Gauge>,
    breaches: Family<ClockLabels, Counter>,
    first_response: Histogram,
    retention: Family<WhatLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    state: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ticketgate");
        let messages = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "messages",
            "Deliveries recorded, by outcome",
            messages.clone(),
        );
        // From 1 ms to ~16 s: a delivery is one transaction with one disk sync.
        let ingest_seconds = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 16.0,
        ]);
        registry.register(
            "ingest_duration_seconds",
            "Time from receiving a message to its committed outcome",
            ingest_seconds.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Admin HTTP requests, by route and status",
            http_requests.clone(),
        );
        let outbox = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Outbox rows not sent, by status (queued, sending, failed, dead)",
            outbox.clone(),
        );
        let mailboxes = Family::<MailboxLabels, Gauge>::default();
        registry.register(
            "mailbox_state",
            "1 for the state each mailbox poller is in",
            mailboxes.clone(),
        );
        let store = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_state",
            "1 for what recording mail into the store last met (ok, disk_full, failing)",
            store.clone(),
        );
        let open_tickets = Family::<OpenLabels, Gauge>::default();
        registry.register(
            "open_tickets",
            "Open tickets (New, In Progress, Blocked) by status and priority",
            open_tickets.clone(),
        );
        let breaches = Family::<ClockLabels, Counter>::default();
        // Both series from the start, at 0: an alert on their rate needs them.
        for clock in ["response", "resolve"] {
            drop(breaches.get_or_create(&ClockLabels {
                clock: clock.to_string(),
            }));
        }
        registry.register(
            "sla_breaches",
            "SLA clocks this instance found past their due time (response, resolve)",
            breaches.clone(),
        );
        // From a minute to ten days, wall time from opening to the first
        // public staff answer.
        let first_response = Histogram::new([
            60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0,
            432000.0, 864000.0,
        ]);
        registry.register(
            "first_response_seconds",
            "Time from a ticket's opening to the support team's first public answer",
            first_response.clone(),
        );
        let retention = Family::<WhatLabels, Counter>::default();
        for what in ["raw_messages", "closed_tickets"] {
            drop(retention.get_or_create(&WhatLabels {
                what: what.to_string(),
            }));
        }
        registry.register(
            "retention_removed",
            "What [retention] removed (raw_messages, closed_tickets), counted by the instance that ran it",
            retention.clone(),
        );
        Self {
            retention,
            open_tickets,
            breaches,
            first_response,
            registry: Mutex::new(registry),
            store,
            messages,
            ingest_seconds,
            http_requests,
            outbox,
            mailboxes,
        }
    }

    /// Counts what a retention run removed.
    pub fn record_retention(&self, purged: &crate::store::people::Purged) {
        for (what, n) in [
            ("raw_messages", purged.raw_messages),
            ("closed_tickets", purged.closed_tickets),
        ] {
            self.retention
                .get_or_create(&WhatLabels {
                    what: what.to_string(),
                })
                .inc_by(n);
        }
    }

    pub fn record_ingest(&self, outcome: Outcome, took: Duration) {
        self.messages
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_string(),
            })
            .inc();
        self.ingest_seconds.observe(took.as_secs_f64());
    }

    /// `route` is the matched route template (`/api/tickets/{id}`), never the
    /// raw path, so ids do not multiply the series.
    pub fn record_http(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// Sets the outbox gauges from a fresh count; statuses with no rows
    /// read 0. Sent rows are not counted: they are most of the table, and
    /// purged after `[outbox] keep_sent`.
    pub fn set_outbox(&self, counts: &[(&str, i64)]) {
        for status in ["queued", "sending", "failed", "dead"] {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.outbox
                .get_or_create(&StatusLabels {
                    status: status.to_string(),
                })
                .set(n);
        }
    }

    /// Sets the open-ticket gauges from a fresh count; a combination that
    /// no longer has tickets is dropped rather than kept at its old value.
    pub fn set_open_tickets(&self, counts: &[(&str, Option<&str>, i64)]) {
        self.open_tickets.clear();
        for (status, priority, n) in counts {
            self.open_tickets
                .get_or_create(&OpenLabels {
                    status: (*status).to_string(),
                    priority: priority.unwrap_or("none").to_string(),
                })
                .set(*n);
        }
    }

    pub fn record_breach(&self, clock: &str) {
        self.breaches
            .get_or_create(&ClockLabels {
                clock: clock.to_string(),
            })
            .inc();
    }

    pub fn observe_first_response(&self, took: Duration) {
        self.first_response.observe(took.as_secs_f64());
    }

    /// One mailbox's state: its current state reads 1, the others 0.
    pub fn set_mailbox(&self, mailbox: &str, state: &str, all: &[&str]) {
        for s in all {
            self.mailboxes
                .get_or_create(&MailboxLabels {
                    mailbox: mailbox.to_string(),
                    state: (*s).to_string(),
                })
                .set(i64::from(*s == state));
        }
    }

    /// The store's state: its current state reads 1, the others 0.
    pub fn set_store(&self, state: StoreState) {
        for s in StoreState::ALL {
            self.store
                .get_or_create(&StoreLabels {
                    state: s.as_str().to_string(),
                })
                .set(i64::from(s == state));
        }
    }

    /// The text exposition format (OpenMetrics-compatible, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outcomes_and_routes_by_template() {
        let m = Metrics::new();
        m.record_ingest(Outcome::TicketCreated, Duration::from_millis(3));
        m.record_ingest(Outcome::TicketCreated, Duration::from_millis(3));
        m.record_http("GET", "/api/tickets/{id}", 200);
        m.set_outbox(&[("queued", 4)]);
        m.set_mailbox("inbox", "idle", &["connected", "idle"]);
        m.set_store(StoreState::DiskFull);
        m.set_open_tickets(&[("new", Some("P1"), 2), ("blocked", None, 1)]);
        m.record_breach("response");
        m.observe_first_response(Duration::from_secs(1200));
        let text = m.encode();
        for line in [
            "ticketgate_open_tickets{status=\"new\",priority=\"P1\"} 2",
            "ticketgate_open_tickets{status=\"blocked\",priority=\"none\"} 1",
            "ticketgate_sla_breaches_total{clock=\"response\"} 1",
            "ticketgate_first_response_seconds_bucket{le=\"1800.0\"} 1",
            "ticketgate_first_response_seconds_bucket{le=\"900.0\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(
            text.contains(r#"ticketgate_messages_total{outcome="ticket_created"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("ticketgate_ingest_duration_seconds_count 2"),
            "{text}"
        );
        assert!(text.contains(
            r#"ticketgate_http_requests_total{method="GET",route="/api/tickets/{id}",status="200"} 1"#
        ));
        assert!(text.contains(r#"ticketgate_outbox_messages{status="queued"} 4"#));
        assert!(text.contains(r#"ticketgate_outbox_messages{status="dead"} 0"#));
        assert!(text.contains(r#"ticketgate_mailbox_state{mailbox="inbox",state="idle"} 1"#));
        assert!(text.contains(r#"ticketgate_mailbox_state{mailbox="inbox",state="connected"} 0"#));
        assert!(text.contains(r#"ticketgate_store_state{state="disk_full"} 1"#));
        assert!(text.contains(r#"ticketgate_store_state{state="ok"} 0"#));
    }
}
