//! OpenAPI schemas for domain types that serialize as plain strings, so the
//! document lists their allowed values instead of an opaque string.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::ids::EmailAddress;
use crate::domain::outcome::Outcome;
use crate::domain::ticket::{FollowerSource, Priority, Role, Status};

fn string_enum(values: Vec<&'static str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

macro_rules! enum_schema {
    ($ty:ty, $values:expr, $description:literal) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                string_enum($values, $description)
            }
        }
        impl ToSchema for $ty {}
    };
}

enum_schema!(
    Status,
    Status::ALL.iter().map(|s| s.as_str()).collect(),
    "Ticket status (machine name); labels come from config"
);
enum_schema!(
    Priority,
    Priority::ALL.iter().map(|s| s.as_str()).collect(),
    "Service-level priority"
);
enum_schema!(
    Role,
    Role::ALL.iter().map(|s| s.as_str()).collect(),
    "User role"
);
enum_schema!(
    FollowerSource,
    FollowerSource::ALL.iter().map(|s| s.as_str()).collect(),
    "Why the user follows the ticket"
);
enum_schema!(
    Outcome,
    Outcome::ALL.iter().map(|s| s.as_str()).collect(),
    "What became of a delivery"
);

impl PartialSchema for EmailAddress {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .into()
    }
}
impl ToSchema for EmailAddress {}
