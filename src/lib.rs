#![forbid(unsafe_code)]
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod health;
pub mod ingest;
pub mod mailer;
pub mod manage;
pub mod metrics;
pub mod outbox;
pub mod render;
pub mod source;
pub mod store;
pub mod tickets;
