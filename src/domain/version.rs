//! The release that fixes a ticket, as staff name it. Mail (`#release`), the
//! API and the portal all make one through [`Version::parse`], so the same
//! words give the same stored release whichever way they came
//! (docs/contract.md, "Interfaces").

use std::fmt;

use super::clean::has_invisible;

/// The longest release name kept; the `tickets.release` column and the
/// "Fixed in release …" comment stay readable.
pub const MAX_CHARS: usize = 64;

/// A release name: trimmed, 1 to [`MAX_CHARS`] printable characters, spaces
/// allowed inside, kept exactly as typed (`v4.2.1` stays `v4.2.1`: people
/// search for the name their release notes use).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

/// Why a release name was refused, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionProblem {
    #[error("the release name is empty")]
    Empty,
    #[error("the release name is {chars} characters long; at most {MAX_CHARS} are allowed")]
    TooLong { chars: usize },
    #[error("the release name contains invisible or control characters; type it as plain text")]
    Invisible,
}

impl Version {
    /// The one way to make a [`Version`].
    pub fn parse(input: &str) -> Result<Self, VersionProblem> {
        let value = input.trim();
        if value.is_empty() {
            return Err(VersionProblem::Empty);
        }
        let chars = value.chars().count();
        if chars > MAX_CHARS {
            return Err(VersionProblem::TooLong { chars });
        }
        // Spaces inside are words ("5.2 beta"); any other whitespace (tab,
        // newline) or a hidden character would store a name that reads
        // differently from what is shown.
        if has_invisible(value) || value.chars().any(|c| c.is_whitespace() && c != ' ') {
            return Err(VersionProblem::Invisible);
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Stored and sent as its text; reading one back parses it again.
impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Version {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_names_are_kept_as_typed_after_trimming() {
        let cases = [
            ("dotted numbers", "5.2.1", "5.2.1"),
            ("a leading v is kept", "v4.2.1", "v4.2.1"),
            ("a capital V is kept", "V4.2.1", "V4.2.1"),
            ("spaces inside are words", "5.2 beta", "5.2 beta"),
            ("the ends are trimmed", "  5.2.1 \t", "5.2.1"),
            ("one character", "7", "7"),
            ("non-ASCII letters", "version café", "version café"),
            ("exactly 64 characters", &"a".repeat(64), &"a".repeat(64)),
            ("64 non-ASCII characters", &"é".repeat(64), &"é".repeat(64)),
        ];
        for (name, input, stored) in cases {
            assert_eq!(
                Version::parse(input).map(|v| v.as_str().to_string()),
                Ok(stored.to_string()),
                "{name}"
            );
        }
    }

    #[test]
    fn refused_names_say_what_is_wrong() {
        let cases = [
            ("empty", "", VersionProblem::Empty),
            ("only spaces", "   ", VersionProblem::Empty),
            (
                "65 characters",
                &"a".repeat(65),
                VersionProblem::TooLong { chars: 65 },
            ),
            ("a newline inside", "5.2\n1", VersionProblem::Invisible),
            ("a tab inside", "5.2\t1", VersionProblem::Invisible),
            ("a control character", "5.2\u{7}", VersionProblem::Invisible),
            ("a NUL", "5.2\0", VersionProblem::Invisible),
            ("a bidi override", "5.2\u{202E}1", VersionProblem::Invisible),
            (
                "a zero-width space",
                "5.2\u{200B}.1",
                VersionProblem::Invisible,
            ),
        ];
        for (name, input, problem) in cases {
            assert_eq!(Version::parse(input), Err(problem), "{name}");
        }
    }

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            VersionProblem::TooLong { chars: 65 }.to_string(),
            "the release name is 65 characters long; at most 64 are allowed"
        );
        assert_eq!(
            VersionProblem::Empty.to_string(),
            "the release name is empty"
        );
    }

    proptest! {
        #[test]
        fn any_accepted_name_round_trips(input in "\\PC{0,80}") {
            if let Ok(v) = Version::parse(&input) {
                prop_assert_eq!(v.as_str(), input.trim());
                prop_assert_eq!(Version::parse(v.as_str()), Ok(v.clone()));
                // What people are shown reads back as the same release.
                let shown = format!("{v}");
                prop_assert_eq!(Version::parse(&shown), Ok(v));
            }
        }

        #[test]
        fn printable_names_are_accepted(input in "[A-Za-z0-9][A-Za-z0-9 .+_-]{0,62}[A-Za-z0-9]") {
            prop_assert_eq!(Version::parse(&input).map(|v| v.as_str().to_string()), Ok(input));
        }
    }
}
