//! What an operator runs: the binary's commands, two `serve` instances failing
//! over on PostgreSQL, and the store contract on SQLite and PostgreSQL. One
//! test binary, so the crate is linked once for all of them
//! (`cargo test --test operator cli::`).
//!
//! `cli` and `instances` need Postfix and Dovecot up throughout: nothing here
//! stops or restarts them (`tests/outbound.rs` stops Postfix, and the `imap`
//! module of `tests/mail` restarts Dovecot, each in a binary of its own).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod instances;
mod store_contract;
