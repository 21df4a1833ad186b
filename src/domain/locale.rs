//! The languages mail and pages are written in. A user's `locale` is stored
//! as its tag (`en`, `ja`); anything else reads as the default, English.

/// A shipped language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    Ja,
}

impl Locale {
    pub const ALL: &[Locale] = &[Locale::En, Locale::Ja];

    /// The language of a stored tag; an unknown or empty one is English.
    pub fn of(tag: &str) -> Self {
        match tag {
            "ja" => Locale::Ja,
            _ => Locale::En,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ja => "ja",
        }
    }

    /// Whom a greeting names when the reader's name is unknown: English
    /// greets "there" ("Hello there,"); Japanese has no neutral form of
    /// address, so it names the address (`alice@example.test 様`).
    pub fn nameless_reader(self, address: &str) -> String {
        match self {
            Locale::En => "there".into(),
            Locale::Ja => address.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_back_and_unknown_ones_are_english() {
        for l in Locale::ALL {
            assert_eq!(Locale::of(l.as_str()), *l);
        }
        assert_eq!(Locale::of(""), Locale::En);
        assert_eq!(Locale::of("fr"), Locale::En);
        assert_eq!(Locale::Ja.nameless_reader("a@b.test"), "a@b.test");
        assert_eq!(Locale::En.nameless_reader("a@b.test"), "there");
    }
}
