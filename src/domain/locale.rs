//! The languages mail and pages are written in. A user's `locale` is stored
//! as its tag (`en`, `ja`); anything else reads as the default, English.

/// A shipped language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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

    /// A shipped language named exactly by its tag (a form's choice);
    /// unlike [`Locale::of`], anything else is `None`, not English.
    pub fn parse(tag: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|l| l.as_str() == tag)
    }

    /// The language's name in itself, as a menu of languages shows it: a
    /// reader finds their own language whatever the page is written in.
    pub const fn native_name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Ja => "日本語",
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
        assert_eq!(Locale::parse("ja"), Some(Locale::Ja));
        for unknown in ["", "fr", "JA", " ja", "ja-JP"] {
            assert_eq!(Locale::parse(unknown), None, "{unknown:?}");
        }
        assert_eq!(Locale::Ja.nameless_reader("a@b.test"), "a@b.test");
        assert_eq!(Locale::En.nameless_reader("a@b.test"), "there");
    }
}
