//! Notification templates (minijinja). A template `NAME` in locale `L` is looked
//! up as `L/NAME` then `NAME`, each first in the operator's folder and then among
//! the copies built into the binary, so an operator overrides any one file
//! without shipping the rest. `.html` templates are auto-escaped.

use std::path::PathBuf;

use minijinja::{Environment, ErrorKind, Value};

use crate::domain::locale::Locale;
use crate::domain::rules::{Action, RuleSet};
use crate::domain::template::with_templates;

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

/// Every built-in template's bodies (`.txt`, `.html`), in every shipped language.
macro_rules! built_in_bodies {
    ($($variant:ident $name:literal $subject:ident $context:ty,)*) => {
        built_in!($($name),*)
    };
}

/// The subject files of a template that has its own (`own`), else none.
macro_rules! subject_files {
    (own $name:literal) => {
        Some([
            (
                concat!($name, ".subject.txt"),
                include_str!(concat!("../templates/", $name, ".subject.txt")),
            ),
            (
                concat!("ja/", $name, ".subject.txt"),
                include_str!(concat!("../templates/ja/", $name, ".subject.txt")),
            ),
        ])
    };
    (ticket $name:literal) => {
        None
    };
}

macro_rules! built_in_subjects {
    ($($variant:ident $name:literal $subject:ident $context:ty,)*) => {
        &[$(subject_files!($subject $name),)*]
    };
}

const BODIES: &[(&str, &str)] = with_templates!(built_in_bodies);

/// Parts templates include (`{% include "_footer.txt" %}`), written once per
/// language: the footer that says who sent a mail and why its reader gets it
/// (every template), and what a team notice's reader may do by replying
/// (`_team`). An operator may override these like any other file.
const PARTIALS: &[(&str, &str)] = &[
    ("_footer.txt", include_str!("../templates/_footer.txt")),
    ("_footer.html", include_str!("../templates/_footer.html")),
    (
        "ja/_footer.txt",
        include_str!("../templates/ja/_footer.txt"),
    ),
    (
        "ja/_footer.html",
        include_str!("../templates/ja/_footer.html"),
    ),
    ("_team.txt", include_str!("../templates/_team.txt")),
    ("_team.html", include_str!("../templates/_team.html")),
    ("ja/_team.txt", include_str!("../templates/ja/_team.txt")),
    ("ja/_team.html", include_str!("../templates/ja/_team.html")),
];

/// Parts of a template that another automatic answer can carry as a section
/// (several `reply_template` answers to one message are one mail).
const SECTIONS: &[(&str, &str)] = built_in!("environment_upgrade.section");

/// Subjects of notifications that are not about one ticket.
const SUBJECTS: &[Option<[(&str, &str); 2]>] = with_templates!(built_in_subjects);

fn built_in_template(name: &str) -> Option<&'static str> {
    BODIES
        .iter()
        .chain(SUBJECTS.iter().flatten().flatten())
        .chain(SECTIONS.iter())
        .chain(PARTIALS.iter())
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

    /// A missing value renders as nothing, also when a field of it is read
    /// (`ticket.id` without a ticket): for checking templates without data.
    pub fn lenient(mut self) -> Self {
        self.env
            .set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        self.env.add_filter("text_to_html", |text: Option<&str>| {
            text_to_html(text.unwrap_or_default())
        });
        self
    }

    /// Renders `file` (e.g. `ack.txt`) in `locale`, falling back to the default language.
    pub fn render(
        &self,
        file: &str,
        locale: &str,
        context: &serde_json::Value,
    ) -> Result<String, RenderError> {
        let localized = format!("{locale}/{file}");
        let candidates: &[&str] = if Locale::of(locale) == Locale::default() {
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

    /// Built-in templates, overridden by those in `[outbox] templates` when
    /// that folder exists.
    pub fn for_settings(settings: &crate::config::Settings) -> Self {
        let dir = std::path::Path::new(&settings.outbox.templates);
        Self::new(dir.is_dir().then(|| dir.to_path_buf()))
    }

    /// Every `reply_template` of `rules` names a template with a text and an
    /// HTML body that parse (built in or in the operator's folder); else the
    /// first that does not, and why. A typo would otherwise surface only
    /// when the rule first fires, as a notification that never renders.
    pub fn check_rules(&self, rules: &RuleSet) -> Result<(), String> {
        for rule in &rules.rules {
            for action in &rule.then {
                let Action::ReplyTemplate(name) = action else {
                    continue;
                };
                for file in [format!("{name}.txt"), format!("{name}.html")] {
                    if let Err(e) = self.env.get_template(&file) {
                        return Err(format!(
                            "rule {:?}: reply_template {name:?}: {}",
                            rule.name,
                            match e.kind() {
                                ErrorKind::TemplateNotFound => format!(
                                    "no template {file} (built in, or in the [outbox] templates folder)"
                                ),
                                _ => format!("{file}: {e:#}"),
                            }
                        ));
                    }
                }
            }
        }
        Ok(())
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
        let joined;
        let context = match context["event"]["also"].as_array() {
            Some(also) if !also.is_empty() => {
                let mut sections = Vec::with_capacity(also.len());
                for extra in also {
                    let name = extra["template"].as_str().unwrap_or_default();
                    let mut own = context.clone();
                    own["event"] = extra["event"].clone();
                    own["section"] = true.into();
                    sections.push(serde_json::json!({
                        "text": self.section(name, "txt", locale, &own)?,
                        "html": self.section(name, "html", locale, &own)?,
                    }));
                }
                joined = {
                    let mut c = context.clone();
                    c["sections"] = sections.into();
                    c
                };
                &joined
            }
            _ => context,
        };
        Ok(Rendered {
            subject,
            text: self.render(&format!("{template}.txt"), locale, context)?,
            html: self.render(&format!("{template}.html"), locale, context)?,
        })
    }

    /// `<name>.section.<kind>`: what an answer says when it rides along in
    /// another one; an operator's template without a section is shown whole
    /// rather than dropped.
    fn section(
        &self,
        name: &str,
        kind: &str,
        locale: &str,
        context: &serde_json::Value,
    ) -> Result<String, RenderError> {
        match self.render(&format!("{name}.section.{kind}"), locale, context) {
            Err(e) if e.source.kind() == ErrorKind::TemplateNotFound => {
                self.render(&format!("{name}.{kind}"), locale, context)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::Template;

    #[test]
    fn a_rule_naming_a_missing_template_is_refused() {
        let r = Renderer::new(None);
        let rules = |template: &str| {
            RuleSet::parse(
                &format!(
                    "[[rule]]\nname = \"answer\"\non = \"ticket_created\"\nthen = {{ reply_template = \"{template}\" }}\n"
                ),
                "rules.toml",
            )
            .unwrap()
        };
        assert_eq!(r.check_rules(&rules("environment_upgrade")), Ok(()));
        let err = r.check_rules(&rules("enviroment_upgrade")).unwrap_err();
        assert!(err.contains("enviroment_upgrade.txt"), "{err}");
        assert!(err.contains("\"answer\""), "{err}");
    }

    fn sample(event: &str, with_ticket: bool) -> serde_json::Value {
        let ticket = serde_json::json!({"id": 7, "subject": "Printer <on> fire", "status": "in_progress",
            "status_label": "In Progress", "priority": "P2"});
        serde_json::json!({
            "marker": "--- Reply above this line ---", "support_name": "Example Support",
            "support_address": "support@example.test", "locale": "en", "recipient_name": "Alice",
            "recipient": {"email": "alice@customer.test", "name": "Alice", "reason": "creator"},
            "ticket": if with_ticket { ticket } else { serde_json::Value::Null },
            "comment": {"id": 1, "body": "It <b>smokes</b>.\n\nSecond paragraph.", "author_name": "Bob",
                "author_email": "bob@customer.test", "internal": event == "comment_added",
                "attachments": ["log.txt"], "attachments_listed": [{"filename": "dump.bin", "size": 123456}]},
            "event": {"from": "new", "from_label": "New", "to": "closed", "to_label": "Closed", "actor_name": "Sam",
                "actor_email": "sam@example.test", "priority": "P2", "sla_name": "High", "sla_response": "4 hours",
                "source": "cc", "excerpt": "@alice please look", "following": true, "user_name": "Alice",
                "user_email": "alice@customer.test", "org_name": "Customer Site A",
                "failures": [{"command": "#status closed", "reason": "not permitted"}],
                "original_subject": "Help", "reason": "too_large", "limit": "50 MB", "release": "5.2.1",
                "tickets": [{"id": 7, "subject": "Printer", "status_label": "New", "updated_at": "2026-11-27"}]},
        })
    }

    #[test]
    fn an_unverified_internal_note_is_explained_with_the_way_to_prove_it() {
        let r = Renderer::new(None);
        let mut context = sample("refused", false);
        context["event"]["reason"] = "unverified_internal".into();
        for (locale, says) in [
            (
                "en",
                ["#internal", "a reply to a notification", "yours alone"],
            ),
            ("ja", ["#internal", "通知メールへの返信", "ご本人専用"]),
        ] {
            let out = r.notification("refused", locale, &context, true).unwrap();
            for part in [&out.text, &out.html] {
                for phrase in says {
                    assert!(part.contains(phrase), "{locale} lacks {phrase:?}:\n{part}");
                }
            }
        }
    }

    #[test]
    fn team_notices_say_how_a_command_is_proven() {
        let r = Renderer::new(None);
        for event in ["new_ticket", "comment_added", "ticket_updated"] {
            for (reason, en, ja) in [
                ("support_notify", "notify_staff", "notify_staff"),
                ("staff", "yours alone", "あなた専用"),
            ] {
                let mut context = sample(event, true);
                context["recipient"]["reason"] = reason.into();
                for (locale, says) in [("en", en), ("ja", ja)] {
                    let out = r.notification(event, locale, &context, false).unwrap();
                    assert!(out.text.contains(says), "{locale}/{event}.txt, {reason}");
                    assert!(out.html.contains(says), "{locale}/{event}.html, {reason}");
                }
            }
        }
    }

    /// A display name is the sender's to choose: the address beside it is not.
    #[test]
    fn authors_are_shown_with_their_address() {
        let r = Renderer::new(None);
        for event in Template::ALL.iter().map(|t| t.as_str()) {
            let mut context = sample(event, true);
            context["comment"]["author_name"] = "Sam Staff (Example Support)".into();
            context["comment"]["author_email"] = "helpdesk@customer.test".into();
            context["event"]["actor_name"] = "Sam Staff (Example Support)".into();
            context["event"]["actor_email"] = "helpdesk@customer.test".into();
            if event == "ticket_updated" {
                context["event"]["commented"] = true.into();
                context["event"]["mentioned"] = serde_json::json!({
                    "actor_name": "Sam Staff (Example Support)",
                    "actor_email": "helpdesk@customer.test", "following": true});
            }
            for locale in ["en", "ja"] {
                let out = r.notification(event, locale, &context, false).unwrap();
                for (kind, part) in [("txt", &out.text), ("html", &out.html)] {
                    if part.contains("Sam Staff (Example Support)") {
                        assert!(
                            part.contains("helpdesk@customer.test"),
                            "{locale}/{event}.{kind} names the author without the address"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_shipped_template_renders_and_starts_with_the_marker() {
        let r = Renderer::new(None);
        for locale in Locale::ALL.iter().map(|l| l.as_str()) {
            for template in Template::ALL {
                let event = template.as_str();
                let needs_subject = template.has_own_subject();
                let with_ticket = !matches!(
                    event,
                    "invite"
                        | "refused"
                        | "list_answer"
                        | "help_answer"
                        | "quarantine_alert"
                        | "sender_refused"
                );
                let out = r
                    .notification(event, locale, &sample(event, with_ticket), needs_subject)
                    .unwrap_or_else(|e| panic!("{locale}/{event}: {e}"));
                assert!(
                    out.text.starts_with("--- Reply above this line ---\n"),
                    "{locale}/{event}.txt:\n{}",
                    out.text
                );
                let body = out
                    .html
                    .split("<body")
                    .nth(1)
                    .and_then(|b| b.split_once('>'))
                    .expect("an HTML document")
                    .1;
                let first_text = body
                    .split('>')
                    .map(|p| p.split('<').next().unwrap().trim())
                    .find(|t| !t.is_empty());
                assert_eq!(
                    first_text,
                    Some("--- Reply above this line ---"),
                    "{locale}/{event}.html"
                );
                assert!(
                    !out.html.contains("<b>smokes</b>"),
                    "{locale}/{event}.html does not escape the comment"
                );
                assert_eq!(out.subject.is_some(), needs_subject);
                if let Some(subject) = out.subject {
                    assert!(
                        !subject.is_empty() && !subject.contains('\n'),
                        "{locale}/{event}.subject.txt"
                    );
                }
            }
        }
    }

    /// Every shipped language has every template compiled in (`built_in!`
    /// names the folders; `Locale::ALL` is the list a reader's locale comes
    /// from), so a language added to one and not the other fails here.
    #[test]
    fn every_language_has_every_template_built_in() {
        for locale in Locale::ALL {
            let folder = match locale {
                Locale::En => String::new(),
                other => format!("{}/", other.as_str()),
            };
            for template in Template::ALL {
                for kind in ["txt", "html"] {
                    let name = format!("{folder}{}.{kind}", template.as_str());
                    assert!(built_in_template(&name).is_some(), "{name} is not built in");
                }
            }
            for part in ["_footer.txt", "_footer.html", "_team.txt", "_team.html"] {
                let name = format!("{folder}{part}");
                assert!(built_in_template(&name).is_some(), "{name} is not built in");
            }
        }
    }

    /// Each `Reason` a mail can be sent for has its own sentence in the
    /// footer of each language: none falls through to the generic line.
    #[test]
    fn every_reason_has_its_own_footer_line() {
        use crate::domain::ticket::Reason;
        let r = Renderer::new(None);
        for (locale, generic) in [
            ("en", "you take part in this ticket"),
            ("ja", "このお問い合わせの関係者の方"),
        ] {
            let mut lines = std::collections::HashSet::new();
            for reason in Reason::ALL {
                let mut context = sample("comment_added", true);
                context["recipient"]["reason"] = reason.as_str().into();
                let out = r
                    .notification("comment_added", locale, &context, false)
                    .unwrap();
                let footer = out.text.rsplit("\n-- \n").next().unwrap().to_string();
                assert!(
                    !footer.contains(generic),
                    "{locale}: {reason} has no line:\n{footer}"
                );
                assert!(
                    lines.insert(footer),
                    "{locale}: {reason} says what another reason says"
                );
            }
        }
    }

    /// The footer is written once per language (`_footer.*`) and every
    /// template shows it: a reader always learns why they got a mail.
    #[test]
    fn every_template_ends_with_the_footer_of_its_language() {
        let r = Renderer::new(None);
        for (locale, why) in [
            (
                "en",
                "You receive this email because you follow this ticket.",
            ),
            (
                "ja",
                "このメールは、このお問い合わせをフォローされている方にお送りしています。",
            ),
        ] {
            for template in Template::ALL {
                let event = template.as_str();
                let mut context = sample(event, true);
                context["recipient"]["reason"] = "follow".into();
                let out = r
                    .notification(event, locale, &context, template.has_own_subject())
                    .unwrap();
                assert!(
                    out.text.contains("\n-- \nExample Support\n"),
                    "{locale}/{event}.txt has no footer:\n{}",
                    out.text
                );
                assert!(
                    out.html.contains("border-top:1px solid #e1e4e8")
                        && out.html.contains("Example Support<br>"),
                    "{locale}/{event}.html has no footer:\n{}",
                    out.html
                );
                // Mail about an account or a removal says so instead.
                if !matches!(
                    event,
                    "follower_removed"
                        | "command_failed"
                        | "help_answer"
                        | "invite"
                        | "list_answer"
                        | "refused"
                ) {
                    assert!(out.text.contains(why), "{locale}/{event}.txt");
                    assert!(out.html.contains(why), "{locale}/{event}.html");
                }
            }
        }
    }

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
