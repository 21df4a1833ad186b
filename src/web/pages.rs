//! The portal's pages: minijinja templates compiled into the binary
//! (`templates/web/`), auto-escaped (they are `.html`), and the words they
//! show per language (`templates/web/<locale>.toml`; a key missing from a
//! translation falls back to English).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::response::Html;
use minijinja::{Environment, Value};

use super::WebError;
use crate::domain::locale::Locale;

macro_rules! pages {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/web/", $name))),)*]
    };
}

const PAGES: &[(&str, &str)] = pages!(
    "base.html",
    "error.html",
    "login.html",
    "link.html",
    "tickets.html",
    "new.html",
    "ticket.html",
    "quarantine.html",
    "message.html",
    "people.html",
    "profile.html",
);

const WORDS: &[(Locale, &str)] = &[
    (Locale::En, include_str!("../../templates/web/en.toml")),
    (Locale::Ja, include_str!("../../templates/web/ja.toml")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters are valid"),
        );
        for (name, source) in PAGES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("built-in page {name}: {e:#}"));
        }
        env
    })
}

/// The words of `locale`, English where it has none.
pub fn words(locale: Locale) -> &'static BTreeMap<String, String> {
    static WORDS_BY_LOCALE: OnceLock<Vec<(Locale, BTreeMap<String, String>)>> = OnceLock::new();
    let all = WORDS_BY_LOCALE.get_or_init(|| {
        let parse = |text: &str| -> BTreeMap<String, String> {
            toml::from_str(text).unwrap_or_else(|e| panic!("built-in words: {e}"))
        };
        let english = parse(WORDS[0].1);
        WORDS
            .iter()
            .map(|(locale, text)| {
                let mut merged = english.clone();
                merged.extend(parse(text));
                (*locale, merged)
            })
            .collect()
    });
    &all.iter().find(|(l, _)| *l == locale).unwrap_or(&all[0]).1
}

/// One word, for text built in code (a refusal shown on a page).
pub fn word(locale: Locale, key: &str) -> String {
    words(locale)
        .get(key)
        .cloned()
        .unwrap_or_else(|| key.to_string())
}

/// Renders page `name` in `locale` with `ctx`; every page also gets `t`
/// (the words) and `lang`.
pub fn render(name: &str, locale: Locale, ctx: Value) -> Result<Html<String>, WebError> {
    let ctx = minijinja::context! {
        t => Value::from(minijinja::value::Serde(words(locale))),
        lang => locale.as_str(),
        ..ctx
    };
    env()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map(Html)
        .map_err(|e| {
            tracing::error!(page = name, error = %format!("{e:#}"), "cannot render a portal page");
            WebError::Store(crate::store::StoreError::Invalid(format!("page {name}")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_english_word() {
        let english: BTreeMap<String, String> = toml::from_str(WORDS[0].1).unwrap();
        for (locale, text) in WORDS {
            let own: BTreeMap<String, String> = toml::from_str(text).unwrap();
            let missing: Vec<_> = english.keys().filter(|k| !own.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{locale:?} lacks {missing:?}");
        }
    }

    #[test]
    fn every_page_compiles() {
        for (name, _) in PAGES {
            env().get_template(name).unwrap();
        }
    }
}
