//! The pure core: every decision ticketgate makes about a message, a ticket or a
//! notification, as functions over data. Nothing here touches tokio, sqlx, lettre,
//! axum, the filesystem or the clock, so each rule is tested with plain tables.

pub mod auth;
pub mod business;
pub mod classify;
pub mod clean;
pub mod dates;
pub mod event;
pub mod ids;
pub mod locale;
pub mod lookalike;
pub mod mail;
pub mod mentions;
pub mod notify;
pub mod outcome;
pub mod reply;
pub mod rules;
pub mod sla;
pub mod template;
pub mod terms;
pub mod threading;
pub mod ticket;
pub mod token;
pub mod version;
