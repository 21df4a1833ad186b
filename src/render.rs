//! Notification templates (minijinja). A template `NAME` in locale `L` is looked
//! up as `L/NAME` then `NAME`, each first in the operator's folder and then among
//! the copies built into the binary, so an operator overrides any one file
//! without shipping the rest. `.html` templates are auto-escaped.

use std::path::PathBuf;

use minijinja::{Environment, ErrorKind, Value};

/// Events with a body template in every shipped language (`.txt` and `.html`).
pub const EVENTS: &[&str] = &[
    "ack",
    "new_ticket",
    "comment_added",
    "status_changed",
    "priority_set",
    "shared_with_you",
    "you_follow",
    "mentioned",
    "invite",
    "command_failed",
    "refused",
    "list_answer",
    "release_noted",
];

/// The languages shipped besides the default (English).
pub const LOCALES: &[&str] = &["ja"];

macro_rules! built_in {
    ($($name:literal),* $(,)?) => {
        &[$(
            (concat!($name, ".txt"), include_str!(concat!("../templates/", $name, ".txt"))),
            (concat!($name, ".html"), include_str!(concat!("../templates/", $name, ".html"))),
            (concat!("ja/", $name, ".txt"), include_str!(concat!("../templates/ja/", $name, ".txt"))),
            (concat!("ja/", $name, ".html"), include_str!(concat!("../templates/ja/", $name, ".html"))),
        )*]
    };
}

macro_rules! built_in_subjects {
    ($($name:literal),* $(,)?) => {
        &[$(
            (concat!($name, ".subject.txt"), include_str!(concat!("../templates/", $name, ".subject.txt"))),
            (concat!("ja/", $name, ".subject.txt"), include_str!(concat!("../templates/ja/", $name, ".subject.txt"))),
        )*]
    };
}

const BODIES: &[(&str, &str)] = built_in!(
    "ack",
    "new_ticket",
    "comment_added",
    "status_changed",
    "priority_set",
    "shared_with_you",
    "you_follow",
    "mentioned",
    "invite",
    "command_failed",
    "refused",
    "list_answer",
    "release_noted",
);

/// Subjects of notifications that are not about one ticket.
const SUBJECTS: &[(&str, &str)] =
    built_in_subjects!("invite", "command_failed", "refused", "list_answer");

fn built_in_template(name: &str) -> Option<&'static str> {
    BODIES
        .iter()
        .chain(SUBJECTS.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

#[derive(Debug, thiserror::Error)]
#[error("rendering {template}: {source:#}")]
pub struct RenderError {
    pub template: String,
    #[source]
    pub source: minijinja::Error,
}

/// Escapes plain text and keeps its shape: blank lines make paragraphs, line
/// breaks stay line breaks.
fn text_to_html(text: &str) -> Value {
    let mut html = String::with_capacity(text.len() + 64);
    for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        html.push_str("<p>");
        for (i, line) in paragraph.trim_matches('\n').lines().enumerate() {
            if i > 0 {
                html.push_str("<br>\n");
            }
            for c in line.chars() {
                match c {
                    '<' => html.push_str("&lt;"),
                    '>' => html.push_str("&gt;"),
                    '&' => html.push_str("&amp;"),
                    '"' => html.push_str("&quot;"),
                    '\'' => html.push_str("&#x27;"),
                    c => html.push(c),
                }
            }
        }
        html.push_str("</p>\n");
    }
    Value::from_safe_string(html)
}

pub struct Renderer {
    env: Environment<'static>,
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: String,
    pub html: String,
}

impl Renderer {
    /// `dir`: the operator's template folder; missing files fall back to the built-in ones.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.add_filter("text_to_html", |text: &str| text_to_html(text));
        env.set_loader(move |name: &str| {
            if let Some(dir) = &dir {
                // Names are ours (template names from the outbox and locales of
                // registered users); still, refuse anything that could leave the folder.
                if !name
                    .split('/')
                    .any(|part| part.is_empty() || part.starts_with('.'))
                {
                    match std::fs::read_to_string(dir.join(name)) {
                        Ok(text) => return Ok(Some(text)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(minijinja::Error::new(
                                ErrorKind::TemplateNotFound,
                                e.to_string(),
                            ));
                        }
                    }
                }
            }
            Ok(built_in_template(name).map(str::to_string))
        });
        Self { env }
    }

    /// Renders `file` (e.g. `ack.txt`) in `locale`, falling back to the default language.
    pub fn render(
        &self,
        file: &str,
        locale: &str,
        context: &serde_json::Value,
    ) -> Result<String, RenderError> {
        let localized = format!("{locale}/{file}");
        let candidates: &[&str] = if locale.is_empty() || locale == "en" {
            &[file]
        } else {
            &[&localized, file]
        };
        let mut last = None;
        for name in candidates {
            match self.env.get_template(name) {
                Ok(t) => {
                    return t
                        .render(minijinja::value::Serde(context))
                        .map_err(|source| RenderError {
                            template: name.to_string(),
                            source,
                        });
                }
                Err(e) if e.kind() == ErrorKind::TemplateNotFound => last = Some(e),
                Err(source) => {
                    return Err(RenderError {
                        template: name.to_string(),
                        source,
                    });
                }
            }
        }
        Err(RenderError {
            template: file.to_string(),
            source: last.expect("at least one candidate"),
        })
    }

    /// Text, HTML and (for notifications without a ticket) subject of `template`.
    pub fn notification(
        &self,
        template: &str,
        locale: &str,
        context: &serde_json::Value,
        needs_subject: bool,
    ) -> Result<Rendered, RenderError> {
        let subject = if needs_subject {
            let line = self.render(&format!("{template}.subject.txt"), locale, context)?;
            Some(line.split_whitespace().collect::<Vec<_>>().join(" "))
        } else {
            None
        };
        Ok(Rendered {
            subject,
            text: self.render(&format!("{template}.txt"), locale, context)?,
            html: self.render(&format!("{template}.html"), locale, context)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_escaped_paragraphs() {
        let html = text_to_html("Hi <b>you</b> & me\nline two\n\nnext").to_string();
        assert_eq!(
            html,
            "<p>Hi &lt;b&gt;you&lt;/b&gt; &amp; me<br>\nline two</p>\n<p>next</p>\n"
        );
    }

    #[test]
    fn operator_files_override_and_locales_fall_back() {
        let ctx = serde_json::json!({"ticket": {"id": 3}});
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.txt"), "default {{ ticket.id }}").unwrap();
        std::fs::create_dir(dir.path().join("ja")).unwrap();
        std::fs::write(dir.path().join("ja/x.txt"), "ja {{ ticket.id }}").unwrap();
        std::fs::write(dir.path().join("y.txt"), "only default").unwrap();
        let r = Renderer::new(Some(dir.path().to_path_buf()));
        assert_eq!(r.render("x.txt", "ja", &ctx).unwrap(), "ja 3");
        assert_eq!(r.render("x.txt", "en", &ctx).unwrap(), "default 3");
        assert_eq!(r.render("y.txt", "ja", &ctx).unwrap(), "only default");
        assert_eq!(r.render("x.txt", "fr", &ctx).unwrap(), "default 3");
        assert!(r.render("missing.txt", "ja", &ctx).is_err());
        assert!(r.render("../x.txt", "en", &ctx).is_err());
    }

    #[test]
    fn html_templates_escape_what_users_wrote() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html"), "<p>{{ ticket.subject }}</p>").unwrap();
        let r = Renderer::new(Some(dir.path().to_path_buf()));
        let ctx = serde_json::json!({"ticket": {"subject": "<script>alert(1)</script>"}});
        assert_eq!(
            r.render("t.html", "en", &ctx).unwrap(),
            "<p>&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</p>"
        );
    }
}
