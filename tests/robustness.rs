//! No input makes ingest panic or vanish: random and mutated messages go
//! through parse → classify → thread → extract (pure) and through the whole
//! ingest into SQLite, and each one ends with exactly one recorded outcome.

mod common;

use std::collections::HashMap;

use common::{TestApp, fixtures};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use ticketgate::domain::classify::{OwnIdentity, classify};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::mail::InboundMail;
use ticketgate::domain::reply;
use ticketgate::domain::threading::{self, ThreadFacts};
use ticketgate::store::LogFilter;

fn corpus() -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Edits that break messages the way transports and bad clients do.
fn mutate(base: &[u8], edits: &[(u8, u32, u8, usize)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(op, at, byte, len) in edits {
        let pos = if out.is_empty() {
            0
        } else {
            at as usize % (out.len() + 1)
        };
        match op % 8 {
            0 if pos < out.len() => out[pos] = byte,
            1 => out
                .splice(pos..pos, std::iter::repeat_n(byte, len))
                .for_each(drop),
            2 => {
                let end = (pos + len).min(out.len());
                out.drain(pos..end);
            }
            3 => out.truncate(pos),
            4 => {
                let end = (pos + len).min(out.len());
                let copy = out[pos..end].to_vec();
                out.splice(pos..pos, copy).for_each(drop);
            }
            5 => out.splice(pos..pos, [b'\0', b'\r', b'\n']).for_each(drop),
            6 => out
                .splice(
                    pos..pos,
                    b"\n--boundary\nContent-Type: multipart/mixed; boundary=\"x\"\n\n"
                        .iter()
                        .copied(),
                )
                .for_each(drop),
            _ => out
                .splice(
                    pos..pos,
                    b"=?utf-8?B?8J+YgA?= =?iso-2022-jp?B?GyRC?=".iter().copied(),
                )
                .for_each(drop),
        }
    }
    out
}

/// (corpus index, edits, random bytes, use the random bytes instead).
type Case = (usize, Vec<(u8, u32, u8, usize)>, Vec<u8>, bool);

fn message_strategy(corpus_len: usize) -> impl Strategy<Value = Case> {
    (
        0..corpus_len,
        prop::collection::vec((any::<u8>(), any::<u32>(), any::<u8>(), 0usize..512), 0..10),
        prop::collection::vec(any::<u8>(), 0..2048),
        any::<bool>(),
    )
}

#[test]
fn the_pure_pipeline_never_panics_on_random_or_mutated_mail() {
    let corpus = corpus();
    let own = OwnIdentity {
        addresses: vec![EmailAddress::parse("support@example.test").unwrap()],
        domain: "example.test".into(),
    };
    let support = EmailAddress::parse("support@example.test").unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &message_strategy(corpus.len()),
            |(index, edits, random, use_random)| {
                let raw = if use_random {
                    random
                } else {
                    mutate(&corpus[index], &edits)
                };
                if let Ok(mail) = InboundMail::parse(&raw) {
                    let _ = classify(&mail, &own);
                    let facts = ThreadFacts {
                        known: HashMap::new(),
                        token: threading::find_token(&mail, &support, b"k"),
                        tagged: threading::subject_tag(&mail.subject, "Support"),
                    };
                    let decision = threading::resolve(&mail, &facts);
                    prop_assert!(!decision.reason.describe().is_empty());
                    let extracted = reply::extract_text(&mail.text);
                    let comment = extracted.comment_text(&mail.text);
                    prop_assert!(!comment.contains('\0'));
                    prop_assert!(
                        comment.trim().is_empty() == mail.text.trim().is_empty()
                            || !comment.trim().is_empty()
                    );
                    let _ = threading::ticket_subject(&mail.subject, "Support");
                }
                let _ = InboundMail::parse_headers(&raw);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn every_mangled_delivery_gets_exactly_one_recorded_outcome() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(TestApp::new());
    let corpus = corpus();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &message_strategy(corpus.len()),
            |(index, edits, random, use_random)| {
                let raw = if use_random {
                    random
                } else {
                    mutate(&corpus[index], &edits)
                };
                let (report, logged) = rt.block_on(async {
                    let before = app
                        .store()
                        .list_log(&LogFilter::default())
                        .await
                        .unwrap()
                        .len();
                    let report = app.deliver(&raw).await;
                    let after = app.store().list_log(&LogFilter::default()).await.unwrap();
                    (report, after.len() - before)
                });
                prop_assert_eq!(logged, 1, "one ingest-log row per delivery");
                if report.outcome.is_accepted() {
                    prop_assert!(report.ticket.is_some() && report.comment.is_some());
                }
                Ok(())
            },
        )
        .unwrap();
}
