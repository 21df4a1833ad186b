//! The rules engine (`config/rules.toml`): ordered, declarative rules that turn
//! an event into effects. One pass: the effects of a rule never trigger rules
//! again, so no configuration can loop. Pure: `evaluate` returns what to do;
//! the use case does it.

use regex::Regex;
use serde::Deserialize;

use super::ticket::{CloseReason, Priority, Role, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    TicketCreated,
    CommentAdded,
    StatusChanged,
    /// Nothing happened on the ticket for the rule's `after` (calendar
    /// time since its last change): run by the scheduler in `serve`, once
    /// per quiet spell.
    Idle,
}

/// What a rule looks at. Every condition given must hold; lists mean "any of".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    author_role: Option<String>,
    #[serde(default)]
    sender_domain: Vec<String>,
    #[serde(default)]
    org: Vec<String>,
    #[serde(default)]
    status: Vec<String>,
    #[serde(default)]
    priority: Vec<String>,
    subject_regex: Option<String>,
    body_regex: Option<String>,
    has_attachment: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThen {
    set_status: Option<String>,
    set_priority: Option<String>,
    #[serde(default)]
    add_follower: Vec<String>,
    #[serde(default)]
    share_with_org_leads: bool,
    reply_template: Option<String>,
    internal_note: Option<String>,
    /// With `set_status = "closed"` (or alone, which closes): why.
    close_reason: Option<String>,
    #[serde(default)]
    stop: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    on: Trigger,
    /// `on = "idle"`: how long the ticket must have been quiet ("3d").
    after: Option<String>,
    #[serde(default)]
    when: RawWhen,
    #[serde(default)]
    then: RawThen,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Clone)]
pub struct When {
    pub author_role: Option<Role>,
    pub sender_domain: Vec<String>,
    pub org: Vec<String>,
    pub status: Vec<Status>,
    pub priority: Vec<Priority>,
    pub subject_regex: Option<Regex>,
    pub body_regex: Option<Regex>,
    pub has_attachment: Option<bool>,
}

/// One thing a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetStatus(Status),
    /// Closes with this reason (an idle rule: `no_response`).
    Close(CloseReason),
    SetPriority(Priority),
    AddFollower(String),
    ShareWithOrgLeads,
    ReplyTemplate(String),
    InternalNote(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub on: Trigger,
    /// `on = "idle"`: the quiet time after which it fires.
    pub after: Option<std::time::Duration>,
    pub when: When,
    pub then: Vec<Action>,
    pub stop: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// A problem in the rules file, located by file and line for `rules check`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// The facts of one event.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub author_role: Option<Role>,
    pub sender_domain: &'a str,
    /// Slugs of the organizations attached to the ticket.
    pub orgs: &'a [String],
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub subject: &'a str,
    pub body: &'a str,
    pub has_attachment: bool,
}

/// An effect and the rule that caused it (recorded in the ticket's events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub rule: String,
    pub action: Action,
}

fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|at| text[..at].lines().count().max(1))
        .unwrap_or(1)
}

impl RuleSet {
    /// Parses and validates a rules file; every error names its line.
    pub fn parse(text: &str, file: &str) -> Result<Self, RuleError> {
        let err = |line: usize, message: String| RuleError {
            file: file.to_string(),
            line,
            message,
        };
        let raw: RawRules = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(1);
            err(line, e.message().to_string())
        })?;
        let mut rules = Vec::with_capacity(raw.rule.len());
        for r in raw.rule {
            let line = line_of(text, &format!("\"{}\"", r.name));
            let bad = |what: &str, e: &dyn std::fmt::Display| {
                err(line, format!("rule {:?}: {what}: {e}", r.name))
            };
            let regex = |p: &Option<String>, what: &str| -> Result<Option<Regex>, RuleError> {
                p.as_deref()
                    .map(|p| {
                        regex::RegexBuilder::new(p)
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| bad(what, &e))
                    })
                    .transpose()
            };
            let when = When {
                author_role: r
                    .when
                    .author_role
                    .as_deref()
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|e| bad("author_role", &e))?,
                sender_domain: r
                    .when
                    .sender_domain
                    .iter()
                    .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                    .collect(),
                org: r.when.org.clone(),
                status: r
                    .when
                    .status
                    .iter()
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad("status", &e))?,
                priority: r
                    .when
                    .priority
                    .iter()
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad("priority", &e))?,
                subject_regex: regex(&r.when.subject_regex, "subject_regex")?,
                body_regex: regex(&r.when.body_regex, "body_regex")?,
                has_attachment: r.when.has_attachment,
            };
            let mut then = Vec::new();
            let status: Option<Status> = r
                .then
                .set_status
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| bad("set_status", &e))?;
            match (status, &r.then.close_reason) {
                (Some(Status::Closed) | None, Some(reason)) => then.push(Action::Close(
                    reason.parse().map_err(|e| bad("close_reason", &e))?,
                )),
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "close_reason",
                        &"goes with set_status = \"closed\" only",
                    ));
                }
                (Some(status), None) => then.push(Action::SetStatus(status)),
                (None, None) => {}
            }
            if let Some(p) = &r.then.set_priority {
                then.push(Action::SetPriority(
                    p.parse().map_err(|e| bad("set_priority", &e))?,
                ));
            }
            then.extend(
                r.then
                    .add_follower
                    .iter()
                    .map(|f| Action::AddFollower(f.trim().to_ascii_lowercase())),
            );
            if r.then.share_with_org_leads {
                then.push(Action::ShareWithOrgLeads);
            }
            if let Some(t) = &r.then.reply_template {
                if t.is_empty() || t.contains(['/', '.']) {
                    return Err(bad("reply_template", &"a template name like \"ack\""));
                }
                then.push(Action::ReplyTemplate(t.clone()));
            }
            if let Some(n) = &r.then.internal_note {
                then.push(Action::InternalNote(n.clone()));
            }
            if then.is_empty() && !r.then.stop {
                return Err(bad("then", &"no action"));
            }
            let after = match (r.on, &r.after) {
                (Trigger::Idle, Some(after)) => Some(
                    crate::config::parse_span(after)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| bad("after", &"not a duration like \"3d\" or \"12h\""))?,
                ),
                (Trigger::Idle, None) => {
                    return Err(bad("after", &"an idle rule needs `after`, such as \"3d\""));
                }
                (_, Some(_)) => return Err(bad("after", &"only idle rules have `after`")),
                (_, None) => None,
            };
            if r.on == Trigger::Idle {
                // Nobody wrote anything: nothing to match an author or a
                // text against, and no one to act as but the desk.
                if r.when.author_role.is_some()
                    || !r.when.sender_domain.is_empty()
                    || r.when.subject_regex.is_some()
                    || r.when.body_regex.is_some()
                    || r.when.has_attachment.is_some()
                {
                    return Err(bad(
                        "when",
                        &"an idle rule looks at status, priority and org only",
                    ));
                }
                if let Some(a) = then.iter().find(|a| {
                    !matches!(
                        a,
                        Action::SetStatus(_) | Action::Close(_) | Action::ReplyTemplate(_)
                    )
                }) {
                    return Err(bad(
                        "then",
                        &format!(
                            "an idle rule may set_status, close_reason and reply_template, not {a}"
                        ),
                    ));
                }
            }
            rules.push(Rule {
                name: r.name,
                on: r.on,
                after,
                when,
                then,
                stop: r.then.stop,
            });
        }
        Ok(Self { rules })
    }

    /// The effects of one event, in rule order, until a rule with `stop` matches.
    pub fn evaluate(&self, trigger: Trigger, facts: &Facts<'_>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for rule in self.rules.iter().filter(|r| r.on == trigger) {
            if !rule.when.matches(facts) {
                continue;
            }
            effects.extend(rule.then.iter().map(|a| Effect {
                rule: rule.name.clone(),
                action: a.clone(),
            }));
            if rule.stop {
                break;
            }
        }
        effects
    }
}

impl When {
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        self.author_role.is_none_or(|r| f.author_role == Some(r))
            && (self.sender_domain.is_empty()
                || self
                    .sender_domain
                    .iter()
                    .any(|d| f.sender_domain.eq_ignore_ascii_case(d)))
            && (self.org.is_empty()
                || self
                    .org
                    .iter()
                    .any(|o| f.orgs.iter().any(|x| x.eq_ignore_ascii_case(o))))
            && (self.status.is_empty() || f.status.is_some_and(|s| self.status.contains(&s)))
            && (self.priority.is_empty() || f.priority.is_some_and(|p| self.priority.contains(&p)))
            && self
                .subject_regex
                .as_ref()
                .is_none_or(|r| r.is_match(f.subject))
            && self.body_regex.as_ref().is_none_or(|r| r.is_match(f.body))
            && self.has_attachment.is_none_or(|h| h == f.has_attachment)
    }
}

/// Rules print as they are written in the rules file (`rules check`).
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::TicketCreated => "ticket_created",
            Trigger::CommentAdded => "comment_added",
            Trigger::StatusChanged => "status_changed",
            Trigger::Idle => "idle",
        })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::SetStatus(s) => write!(f, "set_status = {:?}", s.as_str()),
            Action::Close(r) => write!(
                f,
                "set_status = \"closed\", close_reason = {:?}",
                r.as_str()
            ),
            Action::SetPriority(p) => write!(f, "set_priority = {:?}", p.as_str()),
            Action::AddFollower(a) => write!(f, "add_follower = {a:?}"),
            Action::ShareWithOrgLeads => f.write_str("share_with_org_leads"),
            Action::ReplyTemplate(t) => write!(f, "reply_template = {t:?}"),
            Action::InternalNote(n) => write!(f, "internal_note = {n:?}"),
        }
    }
}

impl When {
    /// Each condition as written in the rules file; empty when the rule always applies.
    pub fn conditions(&self) -> Vec<String> {
        let list = |items: Vec<&str>| format!("{items:?}");
        let mut out = Vec::new();
        if let Some(r) = self.author_role {
            out.push(format!("author_role = {:?}", r.as_str()));
        }
        if !self.sender_domain.is_empty() {
            out.push(format!(
                "sender_domain = {}",
                list(self.sender_domain.iter().map(String::as_str).collect())
            ));
        }
        if !self.org.is_empty() {
            out.push(format!(
                "org = {}",
                list(self.org.iter().map(String::as_str).collect())
            ));
        }
        if !self.status.is_empty() {
            out.push(format!(
                "status = {}",
                list(self.status.iter().map(|s| s.as_str()).collect())
            ));
        }
        if !self.priority.is_empty() {
            out.push(format!(
                "priority = {}",
                list(self.priority.iter().map(|p| p.as_str()).collect())
            ));
        }
        if let Some(r) = &self.subject_regex {
            out.push(format!("subject_regex = {:?}", r.as_str()));
        }
        if let Some(r) = &self.body_regex {
            out.push(format!("body_regex = {:?}", r.as_str()));
        }
        if let Some(h) = self.has_attachment {
            out.push(format!("has_attachment = {h}"));
        }
        out
    }
}

/// The shipped `config/rules.toml`, used when no file is configured.
pub const DEFAULT_RULES: &str = include_str!("../../config/rules.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> RuleSet {
        RuleSet::parse(DEFAULT_RULES, "config/rules.toml").expect("shipped rules are valid")
    }

    fn names(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| format!("{}: {:?}", e.rule, e.action))
            .collect()
    }

    /// The shipped upgrade rule answers a request to upgrade an environment,
    /// whichever word comes first, in English and Japanese, and nothing else.
    #[test]
    fn the_upgrade_rule_matches_upgrade_and_environment_in_either_order() {
        let rules = defaults();
        let answers = |subject: &str| {
            let facts = Facts {
                author_role: Some(Role::Customer),
                sender_domain: "customer.test",
                status: Some(Status::New),
                subject,
                ..Facts::default()
            };
            rules
                .evaluate(Trigger::TicketCreated, &facts)
                .iter()
                .any(|e| e.action == Action::ReplyTemplate("environment_upgrade".into()))
        };
        let cases = [
            ("the old spelling", "Environment upgrade to 5.2", true),
            (
                "upgrade first",
                "Please upgrade our production environment",
                true,
            ),
            (
                "plural, other words between",
                "Upgrading the staging and test environments",
                true,
            ),
            (
                "lower case, short form",
                "can you upgrade the prod env this week?",
                true,
            ),
            (
                "environment first, plural",
                "Environment upgrades for next quarter",
                true,
            ),
            (
                "Japanese, environment first",
                "本番環境のアップグレードをお願いします",
                true,
            ),
            ("Japanese, upgrade first", "アップグレード：検証環境", true),
            (
                "Japanese, version-up",
                "テスト環境をバージョンアップしてください",
                true,
            ),
            (
                "an upgrade without an environment",
                "Login page returns 500 after upgrade",
                false,
            ),
            (
                "an environment without an upgrade",
                "Test environment is down",
                false,
            ),
            (
                "a word that only contains them",
                "Upgradeable environmentalism",
                false,
            ),
            (
                "Japanese, environment only",
                "検証環境が起動しません",
                false,
            ),
            (
                "Japanese, upgrade only",
                "アップグレード後にログインできません",
                false,
            ),
        ];
        for (name, subject, expected) in cases {
            assert_eq!(answers(subject), expected, "{name}: {subject:?}");
        }
    }

    #[test]
    fn every_default_rule() {
        let rules = defaults();
        let orgs = vec!["customer-site-a".to_string()];
        let customer_new = Facts {
            author_role: Some(Role::Customer),
            sender_domain: "customer.test",
            orgs: &orgs,
            status: Some(Status::New),
            subject: "Printer",
            body: "It is broken",
            ..Facts::default()
        };
        let created = rules.evaluate(Trigger::TicketCreated, &customer_new);
        assert!(
            created
                .iter()
                .any(|e| e.action == Action::ReplyTemplate("ack".into())),
            "{:?}",
            names(&created)
        );
        assert!(
            created
                .iter()
                .any(|e| e.action == Action::ShareWithOrgLeads),
            "{:?}",
            names(&created)
        );
        assert!(
            !created
                .iter()
                .any(|e| e.action == Action::ReplyTemplate("environment_upgrade".into()))
        );

        let upgrade = Facts {
            subject: "Request: environment upgrade to 5.2",
            ..customer_new.clone()
        };
        let created = rules.evaluate(Trigger::TicketCreated, &upgrade);
        assert!(
            created
                .iter()
                .any(|e| e.action == Action::ReplyTemplate("environment_upgrade".into())),
            "{:?}",
            names(&created)
        );

        let reply_on_closed = Facts {
            status: Some(Status::Closed),
            ..customer_new.clone()
        };
        assert_eq!(
            rules
                .evaluate(Trigger::CommentAdded, &reply_on_closed)
                .into_iter()
                .map(|e| e.action)
                .collect::<Vec<_>>(),
            [Action::SetStatus(Status::New)]
        );
        let reply_on_escalated = Facts {
            status: Some(Status::Escalated),
            ..customer_new.clone()
        };
        assert!(
            rules
                .evaluate(Trigger::CommentAdded, &reply_on_escalated)
                .is_empty()
        );
        let staff_on_closed = Facts {
            author_role: Some(Role::Staff),
            ..reply_on_closed.clone()
        };
        assert!(
            rules
                .evaluate(Trigger::CommentAdded, &staff_on_closed)
                .is_empty()
        );
    }

    #[test]
    fn conditions_combine_and_stop_ends_the_pass() {
        let text = r#"
[[rule]]
name = "p1 for outages"
on = "ticket_created"
when = { subject_regex = "(?i)outage", sender_domain = ["customer.test"], has_attachment = false }
then = { set_priority = "P1", stop = true }

[[rule]]
name = "never reached after stop"
on = "ticket_created"
then = { internal_note = "hello" }
"#;
        let rules = RuleSet::parse(text, "t.toml").unwrap();
        let f = Facts {
            subject: "Total OUTAGE",
            sender_domain: "customer.test",
            ..Facts::default()
        };
        assert_eq!(
            rules
                .evaluate(Trigger::TicketCreated, &f)
                .into_iter()
                .map(|e| e.action)
                .collect::<Vec<_>>(),
            [Action::SetPriority(Priority::P1)]
        );
        let other_domain = Facts {
            sender_domain: "other.test",
            ..f.clone()
        };
        assert_eq!(
            rules
                .evaluate(Trigger::TicketCreated, &other_domain)
                .into_iter()
                .map(|e| e.action)
                .collect::<Vec<_>>(),
            [Action::InternalNote("hello".into())]
        );
        let with_file = Facts {
            has_attachment: true,
            ..f.clone()
        };
        assert_eq!(rules.evaluate(Trigger::TicketCreated, &with_file).len(), 1);
        assert!(
            rules.evaluate(Trigger::CommentAdded, &f).is_empty(),
            "other triggers do not match"
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases = [
            (
                "[[rule]]\nname = \"x\"\non = \"sometimes\"\nthen = { stop = true }\n",
                3,
                "sometimes",
            ),
            (
                "[[rule]]\nname = \"bad status\"\non = \"comment_added\"\nthen = { set_status = \"finished\" }\n",
                2,
                "set_status",
            ),
            (
                "[[rule]]\nname = \"bad regex\"\non = \"comment_added\"\nwhen = { body_regex = \"(\" }\nthen = { stop = true }\n",
                2,
                "body_regex",
            ),
            (
                "[[rule]]\nname = \"nothing\"\non = \"comment_added\"\n",
                2,
                "no action",
            ),
            (
                "\n\n[[rule]]\nname = \"typo\"\non = \"comment_added\"\nthen = { set_statsu = \"new\" }\n",
                6,
                "set_statsu",
            ),
        ];
        for (text, line, needle) in cases {
            let e = RuleSet::parse(text, "rules.toml").unwrap_err();
            assert_eq!((e.file.as_str(), e.line), ("rules.toml", line), "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}
