//! The notifications the gateway sends, by template. The list is written
//! once, in `with_templates!`: it defines [`Template`] here and the
//! templates compiled into the binary in `render`.

/// Calls `$m!` with every built-in template as `Variant "name" subject,`:
/// `subject` is `own` when the template has its own `.subject.txt` (mail
/// about no ticket), `ticket` when the mail takes the ticket's subject.
macro_rules! with_templates {
    ($m:ident) => {
        $m! {
            Ack "ack" ticket,
            NewTicket "new_ticket" ticket,
            CommentAdded "comment_added" ticket,
            StatusChanged "status_changed" ticket,
            PrioritySet "priority_set" ticket,
            SharedWithYou "shared_with_you" ticket,
            YouFollow "you_follow" ticket,
            Mentioned "mentioned" ticket,
            ReleaseNoted "release_noted" ticket,
            FollowerRemoved "follower_removed" ticket,
            TicketUpdated "ticket_updated" ticket,
            EnvironmentUpgrade "environment_upgrade" ticket,
            Invite "invite" own,
            CommandFailed "command_failed" own,
            Refused "refused" own,
            ListAnswer "list_answer" own,
            HelpAnswer "help_answer" own,
            QuarantineAlert "quarantine_alert" own,
            SenderRefused "sender_refused" own,
        }
    };
}
pub(crate) use with_templates;

macro_rules! define_template {
    ($($variant:ident $name:literal $subject:ident,)*) => {
        /// A built-in notification template. Its wire name (`as_str`) names
        /// the files under `templates/` and the outbox row's `template`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Template {
            $($variant,)*
        }

        impl Template {
            pub const ALL: &[Template] = &[$(Template::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Template::$variant => $name,)*
                }
            }

            /// Mail about no ticket: its subject comes from its own file.
            pub fn has_own_subject(self) -> bool {
                match self {
                    $(Template::$variant => stringify!($subject) == "own",)*
                }
            }
        }
    };
}
with_templates!(define_template);

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("no built-in template {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for t in Template::ALL {
            assert_eq!(t.as_str().parse::<Template>(), Ok(*t));
        }
        let mut names: Vec<_> = Template::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Template::ALL.len());
        assert!("nope".parse::<Template>().is_err());
    }
}
