//! ticketgate: an email-driven support-ticketing gateway.
//!
//! # Layout
//!
//! Which folder holds which decision (the picture and "where to add …" are
//! in `docs/architecture.md`):
//!
//! | module | holds |
//! |---|---|
//! | [`domain`] | every decision, as pure functions: mail parsing, classification, threading, reply extraction, commands, release names, permissions, who is told, rules, templates and event kinds, status and priority words per language |
//! | [`tickets`] | the ticket service: each change to a ticket (open, comment, commands, status, priority, release, followers) for every channel, with its events, notifications and rules; the `Replay` trait through which [`api`] and [`web`] replay quarantined mail |
//! | [`ingest`] | the email channel: raw bytes in, one logged outcome out, tickets changed through [`tickets`] |
//! | [`api`] | the admin HTTP channel: authentication, JSON, the same [`tickets`] calls |
//! | [`web`] | the portal: pages for customers and staff, emailed sign-in links, sessions and CSRF, each person's profile (name, language), the same [`tickets`] calls |
//! | [`listen`] | serving HTTP for [`api`] and [`web`]: header, idle and body timeouts, a connection cap, a shutdown deadline |
//! | [`source`] | where mail comes from (Maildir, IMAP, mbox, files, stdin), handed to a [`source::MailSink`] |
//! | [`store`] | the only SQL: the `Store` and `Tx` traits, SQLite and PostgreSQL |
//! | [`outbox`], [`render`], [`mailer`] | queued notifications rendered from templates and sent |
//! | [`manage`] | administration: organizations, users, invitations, API tokens |
//! | [`app`], [`cli`], [`config`], [`health`], [`metrics`] | wiring, the command line, settings, source and store health, Prometheus metrics |
//! | [`systemd`] | readiness and stopping told to systemd (`Type=notify`) |
//! | [`check`] | `ticketgate check`: the configuration tried against what it names, changing nothing |
#![forbid(unsafe_code)]
pub mod api;
pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod domain;
pub mod health;
pub mod ingest;
pub mod listen;
pub mod mailer;
pub mod manage;
pub mod metrics;
pub mod outbox;
pub mod people;
pub mod render;
pub mod source;
pub mod store;
pub mod systemd;
pub mod tickets;
pub mod web;
