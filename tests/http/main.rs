//! The two HTTP listeners: the admin API, the portal (with a real browser)
//! and `serve`'s connection limits and timeouts. One test binary, so the
//! crate is linked once for all of them (`cargo test --test http web::`).
//!
//! None of these tests uses the mail stack; each server listens on a port of
//! its own, and `listeners` sets its open-file limit on the `serve` child only.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod listeners;
mod web;
