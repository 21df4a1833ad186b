//! Mail in: parsing, threading, rules, trust and intake from stdin, files,
//! Maildir, IMAP and the MTA pipe. One test binary, so the crate is linked
//! once for all of them (`cargo test --test mail imap::`).
//!
//! Tests here run in parallel threads of one process. `imap` restarts Dovecot
//! and holds its own lock while it does; no other module here reads a mailbox
//! in Dovecot (`pipe` goes through Postfix alone). Postfix outages belong in
//! `tests/outbound.rs`, never here.

#[path = "../common/mod.rs"]
mod common;

mod desk;
mod golden;
mod imap;
mod ingest;
mod intake;
mod pipe;
mod reply;
mod robustness;
mod rules;
mod threading;
mod trust;
