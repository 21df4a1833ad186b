//! The words statuses and priority levels are shown with, in every
//! language. Config writes them in the default language (`[statuses]`,
//! `[sla.Pn]`: what the JSON API and the CLI show and what events record)
//! and may translate them (`[statuses.<lang>]`, `[sla.Pn.<lang>]`). A
//! response target is read as a [`ResponseTime`], so "4 hours" reads
//! "4時間" without anyone translating it, and counted in business time
//! (see domain/business.rs and domain/sla.rs).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use super::business::Calendar;
use super::event::Event;
use super::locale::Locale;
use super::ticket::{CloseReason, Priority, Status};

/// What a response target is counted in. Every unit is business time
/// (see [`ResponseTime::business`]); they differ in how they are said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Minute,
    Hour,
    /// "days": said as written, counted as business days.
    Day,
    /// "calendar days": said as "days", but a target cannot be counted in
    /// them, so config refuses them for a clock (see src/config.rs).
    CalendarDay,
    /// A working day: weekends and holidays do not count ("3d" too).
    BusinessDay,
    Week,
}

/// A response target such as "4 hours" or "1 business day", read from
/// the English words config has always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTime {
    pub count: u32,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a response time like \"4 hours\" or \"1 business day\": {0:?}")]
pub struct NotAResponseTime(pub String);

impl FromStr for ResponseTime {
    type Err = NotAResponseTime;

    /// `N unit`, the unit singular or plural ("minute", "hour", "day",
    /// "business day" or "working day", "week"), also written together
    /// ("4h", "30min"); "a"/"an"/"one" count as 1. Case and spacing do not
    /// matter. Short forms: "30m", "4h", "3d" (business days: that is what
    /// a target counts, and it is said so), "2w".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wrong = || NotAResponseTime(s.to_string());
        let text = s.trim().to_ascii_lowercase();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&at| at > 0)
            .unwrap_or(0);
        let (count, unit) = if split > 0 {
            (&text[..split], text[split..].trim())
        } else {
            text.split_once(char::is_whitespace).ok_or_else(wrong)?
        };
        let count = match count {
            "a" | "an" | "one" => 1,
            digits => digits.parse::<u32>().map_err(|_| wrong())?,
        };
        let unit = unit.split_whitespace().collect::<Vec<_>>().join(" ");
        let unit = match unit.as_str() {
            "m" | "min" | "mins" | "minute" | "minutes" => TimeUnit::Minute,
            "h" | "hr" | "hrs" | "hour" | "hours" => TimeUnit::Hour,
            "day" | "days" => TimeUnit::Day,
            "calendar day" | "calendar days" => TimeUnit::CalendarDay,
            "d" | "business day" | "business days" | "working day" | "working days" => {
                TimeUnit::BusinessDay
            }
            "w" | "week" | "weeks" => TimeUnit::Week,
            _ => return Err(wrong()),
        };
        if count == 0 {
            return Err(wrong());
        }
        Ok(ResponseTime { count, unit })
    }
}

impl ResponseTime {
    /// The target as a reader of `locale` says it.
    pub fn render(self, locale: Locale) -> String {
        let n = self.count;
        match locale {
            Locale::En => {
                let unit = match self.unit {
                    TimeUnit::Minute => "minute",
                    TimeUnit::Hour => "hour",
                    TimeUnit::Day | TimeUnit::CalendarDay => "day",
                    TimeUnit::BusinessDay => "business day",
                    TimeUnit::Week => "week",
                };
                format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
            }
            Locale::Ja => {
                let unit = match self.unit {
                    TimeUnit::Minute => "分",
                    TimeUnit::Hour => "時間",
                    TimeUnit::Day | TimeUnit::CalendarDay => "日",
                    TimeUnit::BusinessDay => "営業日",
                    TimeUnit::Week => "週間",
                };
                format!("{n}{unit}")
            }
        }
    }
}

impl ResponseTime {
    /// The business time the target allows in `cal`: minutes and hours of
    /// working time, a day (business, working or plain) of
    /// `cal.day_length()`, a week of as many days as the desk works in
    /// one, so "1 week" is a calendar week later on an ordinary week.
    /// Calendar days, which config refuses for a clock, count as business
    /// days here.
    pub fn business(&self, cal: &Calendar) -> Duration {
        let unit = match self.unit {
            TimeUnit::Minute => Duration::from_secs(60),
            TimeUnit::Hour => Duration::from_secs(3600),
            TimeUnit::Day | TimeUnit::CalendarDay | TimeUnit::BusinessDay => cal.day_length(),
            TimeUnit::Week => cal.day_length().saturating_mul(cal.days_per_week()),
        };
        unit.saturating_mul(self.count)
    }

    /// Whether the target can run a clock: a count of calendar days
    /// cannot (see [`TimeUnit::CalendarDay`]).
    pub fn is_business_time(&self) -> bool {
        self.unit != TimeUnit::CalendarDay
    }
}

/// A status's shipped label in `locale`; English is `Status::default_label`.
pub fn shipped_label(status: Status, locale: Locale) -> &'static str {
    match locale {
        Locale::En => status.default_label(),
        Locale::Ja => match status {
            Status::New => "新規",
            Status::InProgress => "対応中",
            Status::Blocked => "保留中",
            Status::Closed => "完了",
            Status::Escalated => "完了（TEMへエスカレーション済み）",
        },
    }
}

/// A target as recorded ("1d", "3 business days") in `locale`; words
/// that do not read as one are shown as written.
fn said_in(recorded: &str, locale: Locale) -> String {
    recorded
        .parse::<ResponseTime>()
        .map_or_else(|_| recorded.to_string(), |r| r.render(locale))
}

/// Why a ticket was closed, in the policy's words (docs/contract.md,
/// "Desk"), as customers and staff read it.
pub fn close_reason_label(reason: CloseReason, locale: Locale) -> &'static str {
    match (reason, locale) {
        (CloseReason::Resolved, Locale::En) => "Resolved by support",
        (CloseReason::ByCustomer, Locale::En) => "Closed by the customer",
        (CloseReason::FeatureRequest, Locale::En) => "Feature request",
        (CloseReason::NoResponse, Locale::En) => "No response from the customer",
        (CloseReason::Duplicate, Locale::En) => "Duplicate of another ticket",
        (CloseReason::Resolved, Locale::Ja) => "サポートにより解決",
        (CloseReason::ByCustomer, Locale::Ja) => "お客様によるクローズ",
        (CloseReason::FeatureRequest, Locale::Ja) => "機能要望",
        (CloseReason::NoResponse, Locale::Ja) => "お客様からのご返信なし",
        (CloseReason::Duplicate, Locale::Ja) => "別のお問い合わせと重複",
    }
}

/// The level names the shipped config gives `[sla.P1..P4]`, with their
/// translations: a config that kept them is read in every language.
const SHIPPED_LEVELS: &[(Priority, &str, &str)] = &[
    (Priority::P1, "Critical", "緊急"),
    (Priority::P2, "High", "高"),
    (Priority::P3, "Medium", "中"),
    (Priority::P4, "Low", "低"),
];

fn shipped_level_name(priority: Priority, name: &str, locale: Locale) -> Option<&'static str> {
    let &(_, en, ja) = SHIPPED_LEVELS
        .iter()
        .find(|(p, en, _)| *p == priority && *en == name)?;
    Some(match locale {
        Locale::En => en,
        Locale::Ja => ja,
    })
}

/// `[sla.Pn]`: a priority level's name and response target in the default
/// language, and their translations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    pub name: String,
    pub response: String,
    /// `[sla.Pn.<lang>]`; a word left out there is derived (see
    /// [`Terms::sla_words`]).
    pub translated: BTreeMap<Locale, LevelWords>,
}

/// One language's words for a level; `None`: derived from the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelWords {
    pub name: Option<String>,
    pub response: Option<String>,
}

/// Every status label and level word, in every language, as config sets
/// them. Built once at start; the default (no config) is the shipped
/// labels and no levels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    /// `[statuses]`: labels in the default language, where configured.
    pub labels: BTreeMap<Status, String>,
    /// `[statuses.<lang>]`.
    pub translated_labels: BTreeMap<Locale, BTreeMap<Status, String>>,
    /// `[sla.P1..P4]`.
    pub levels: BTreeMap<Priority, Level>,
}

impl Terms {
    /// `status` as a reader of `locale` reads it: its translation when
    /// config gives one; else a label config changed in the default
    /// language, as written (its meaning is the operator's, and a shipped
    /// translation would say something else); else the shipped label.
    pub fn label(&self, status: Status, locale: Locale) -> String {
        if let Some(label) = self
            .translated_labels
            .get(&locale)
            .and_then(|t| t.get(&status))
        {
            return label.clone();
        }
        match self.labels.get(&status) {
            Some(own) if own != status.default_label() => own.clone(),
            _ => shipped_label(status, locale).to_string(),
        }
    }

    /// The label in the default language: the JSON API's `status_label`.
    pub fn default_label(&self, status: Status) -> String {
        self.label(status, Locale::default())
    }

    /// Every status with its label in `locale`, in workflow order.
    pub fn statuses(&self, locale: Locale) -> Vec<(Status, String)> {
        Status::ALL
            .iter()
            .map(|s| (*s, self.label(*s, locale)))
            .collect()
    }

    /// `[sla.Pn]` name and response as configured, in the default
    /// language: what a `priority_set` event records.
    pub fn sla(&self, priority: Priority) -> Option<(String, String)> {
        self.levels
            .get(&priority)
            .map(|l| (l.name.clone(), l.response.clone()))
    }

    /// The level of `priority` as a reader of `locale` reads it.
    pub fn sla_in(&self, priority: Priority, locale: Locale) -> Option<(String, String)> {
        let level = self.levels.get(&priority)?;
        Some(self.sla_words(priority, &level.name, &level.response, locale))
    }

    /// A level's `name` and `response`, as recorded in the default
    /// language (perhaps under an older config), said in `locale`. A
    /// translation from config applies while the words are still the
    /// configured ones; else a shipped level name is translated (the
    /// default language keeps the name as recorded), a response target is
    /// read and said in `locale` (so "4h" reads "4 hours" in English too,
    /// and the shipped words read as written), and anything else is shown
    /// as recorded.
    pub fn sla_words(
        &self,
        priority: Priority,
        name: &str,
        response: &str,
        locale: Locale,
    ) -> (String, String) {
        let said = |response: &str| {
            response
                .parse::<ResponseTime>()
                .map_or_else(|_| response.to_string(), |r| r.render(locale))
        };
        if locale == Locale::default() {
            return (name.to_string(), said(response));
        }
        let level = self.levels.get(&priority);
        let words = level.and_then(|l| l.translated.get(&locale));
        let name = match words.and_then(|w| w.name.as_ref()) {
            Some(own) if level.is_some_and(|l| l.name == name) => own.clone(),
            _ => shipped_level_name(priority, name, locale)
                .map_or_else(|| name.to_string(), str::to_string),
        };
        let response = match words.and_then(|w| w.response.as_ref()) {
            Some(own) if level.is_some_and(|l| l.response == response) => own.clone(),
            _ => said(response),
        };
        (name, response)
    }

    /// A resolution target as recorded, in `locale`.
    pub fn resolve_words(&self, recorded: &str, locale: Locale) -> String {
        said_in(recorded, locale)
    }

    /// `event` with the words it recorded said in `locale` (a priority's
    /// level and target), for a page or a mail in that language.
    pub fn reword(&self, event: &Event, locale: Locale) -> Event {
        match event {
            Event::PrioritySet {
                priority,
                sla_name,
                sla_response,
                sla_resolve,
            } => {
                let (sla_name, sla_response) =
                    self.sla_words(*priority, sla_name, sla_response, locale);
                Event::PrioritySet {
                    priority: *priority,
                    sla_name,
                    sla_response,
                    sla_resolve: said_in(sla_resolve, locale),
                }
            }
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_times_read_the_words_config_uses() {
        let rt = |count, unit| Ok(ResponseTime { count, unit });
        let cases: &[(&str, Result<ResponseTime, ()>)] = &[
            ("1 hour", rt(1, TimeUnit::Hour)),
            ("4 hours", rt(4, TimeUnit::Hour)),
            ("1 business day", rt(1, TimeUnit::BusinessDay)),
            ("3 business days", rt(3, TimeUnit::BusinessDay)),
            ("3  Business   Days ", rt(3, TimeUnit::BusinessDay)),
            ("2 working days", rt(2, TimeUnit::BusinessDay)),
            ("30 minutes", rt(30, TimeUnit::Minute)),
            ("30min", rt(30, TimeUnit::Minute)),
            ("4h", rt(4, TimeUnit::Hour)),
            ("an hour", rt(1, TimeUnit::Hour)),
            ("2 days", rt(2, TimeUnit::Day)),
            ("2 calendar days", rt(2, TimeUnit::CalendarDay)),
            ("1 week", rt(1, TimeUnit::Week)),
            ("30m", rt(30, TimeUnit::Minute)),
            ("3d", rt(3, TimeUnit::BusinessDay)),
            ("3 D", rt(3, TimeUnit::BusinessDay)),
            ("2w", rt(2, TimeUnit::Week)),
            ("0 hours", Err(())),
            ("-1 hours", Err(())),
            ("4", Err(())),
            ("hours", Err(())),
            ("next morning", Err(())),
            ("4 fortnights", Err(())),
            ("99999999999 hours", Err(())),
            ("", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(
                &text.parse::<ResponseTime>().map_err(|_| ()),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn response_times_are_said_in_each_language() {
        let cases = [
            ("1 hour", "1 hour", "1時間"),
            ("4 hours", "4 hours", "4時間"),
            ("1 business day", "1 business day", "1営業日"),
            ("3 business days", "3 business days", "3営業日"),
            ("30 minutes", "30 minutes", "30分"),
            ("2 days", "2 days", "2日"),
            ("1 week", "1 week", "1週間"),
            ("2 calendar days", "2 days", "2日"),
            ("4h", "4 hours", "4時間"),
            ("30m", "30 minutes", "30分"),
            ("1d", "1 business day", "1営業日"),
            ("3d", "3 business days", "3営業日"),
            ("2w", "2 weeks", "2週間"),
        ];
        for (text, en, ja) in cases {
            let r: ResponseTime = text.parse().unwrap();
            assert_eq!(r.render(Locale::En), en);
            assert_eq!(r.render(Locale::Ja), ja);
        }
    }

    #[test]
    fn targets_are_business_time_in_the_desk_s_calendar() {
        use crate::domain::business::CalendarText;
        let own = |days: &[&str], hours| {
            let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
            Calendar::parse(&CalendarText {
                timezone: "UTC",
                days: &days,
                hours,
                holidays: &[],
            })
            .unwrap()
        };
        let nine_to_five = Calendar::default();
        let six_days = own(&["mon", "tue", "wed", "thu", "fri", "sat"], "08:00-18:00");
        let h = |n: u64| Duration::from_secs(n * 3600);
        let cases = [
            ("30m", &nine_to_five, Duration::from_secs(30 * 60)),
            ("4 hours", &nine_to_five, h(4)),
            ("4h", &six_days, h(4)),
            ("1 business day", &nine_to_five, h(8)),
            // "3d" is three working days, whatever a day lasts.
            ("3d", &nine_to_five, h(3 * 8)),
            ("3d", &six_days, h(3 * 10)),
            ("2 days", &nine_to_five, h(2 * 8)),
            ("3 working days", &six_days, h(3 * 10)),
            // A week is the desk's week.
            ("1w", &nine_to_five, h(5 * 8)),
            ("2 weeks", &six_days, h(2 * 6 * 10)),
            ("4294967295 weeks", &six_days, h(4_294_967_295 * 6 * 10)),
        ];
        for (text, cal, want) in cases {
            let target: ResponseTime = text.parse().unwrap();
            assert_eq!(target.business(cal), want, "{text}");
            assert!(target.is_business_time(), "{text}");
        }
        let calendar_days: ResponseTime = "2 calendar days".parse().unwrap();
        assert!(!calendar_days.is_business_time());
    }

    fn level(name: &str, response: &str) -> Level {
        Level {
            name: name.into(),
            response: response.into(),
            translated: BTreeMap::new(),
        }
    }

    #[test]
    fn labels_fall_back_from_translation_to_a_changed_label_to_the_shipped_one() {
        let mut terms = Terms::default();
        assert_eq!(terms.label(Status::InProgress, Locale::En), "In Progress");
        assert_eq!(terms.label(Status::InProgress, Locale::Ja), "対応中");
        // Written out as shipped: still translated.
        terms
            .labels
            .insert(Status::InProgress, "In Progress".into());
        assert_eq!(terms.label(Status::InProgress, Locale::Ja), "対応中");
        // Changed and not translated: as written, in every language.
        terms
            .labels
            .insert(Status::Escalated, "Sent to engineering".into());
        assert_eq!(
            terms.label(Status::Escalated, Locale::Ja),
            "Sent to engineering"
        );
        assert_eq!(
            terms.default_label(Status::Escalated),
            "Sent to engineering"
        );
        // Translated.
        terms.translated_labels.insert(
            Locale::Ja,
            BTreeMap::from([(Status::Escalated, "開発部門へ移管".to_string())]),
        );
        assert_eq!(terms.label(Status::Escalated, Locale::Ja), "開発部門へ移管");
        assert_eq!(
            terms.default_label(Status::Escalated),
            "Sent to engineering"
        );
    }

    #[test]
    fn level_words_are_translated_derived_or_kept() {
        let mut terms = Terms::default();
        terms.levels.insert(Priority::P2, level("High", "4 hours"));
        terms
            .levels
            .insert(Priority::P3, level("Gold", "next morning"));
        // The default language: as configured, as recorded.
        assert_eq!(
            terms.sla_in(Priority::P2, Locale::En),
            Some(("High".into(), "4 hours".into()))
        );
        // A shipped name and a readable target need no translation.
        assert_eq!(
            terms.sla_in(Priority::P2, Locale::Ja),
            Some(("高".into(), "4時間".into()))
        );
        // An own name and free text are kept as written...
        assert_eq!(
            terms.sla_in(Priority::P3, Locale::Ja),
            Some(("Gold".into(), "next morning".into()))
        );
        // ...until translated.
        terms
            .levels
            .get_mut(&Priority::P3)
            .unwrap()
            .translated
            .insert(
                Locale::Ja,
                LevelWords {
                    name: Some("ゴールド".into()),
                    response: Some("翌朝".into()),
                },
            );
        assert_eq!(
            terms.sla_in(Priority::P3, Locale::Ja),
            Some(("ゴールド".into(), "翌朝".into()))
        );
        // Words recorded under an older config: the translation is not
        // theirs, the target is still read.
        assert_eq!(
            terms.sla_words(Priority::P3, "Silver", "2 business days", Locale::Ja),
            ("Silver".into(), "2営業日".into())
        );
        // Short forms are said in words in every language.
        for (recorded, en, ja) in [
            ("4h", "4 hours", "4時間"),
            ("3d", "3 business days", "3営業日"),
            ("1 business day", "1 business day", "1営業日"),
            ("next morning", "next morning", "next morning"),
        ] {
            assert_eq!(
                terms.sla_words(Priority::P2, "High", recorded, Locale::En),
                ("High".into(), en.into())
            );
            assert_eq!(
                terms.sla_words(Priority::P2, "High", recorded, Locale::Ja),
                ("高".into(), ja.into())
            );
        }
        assert_eq!(terms.sla_in(Priority::P1, Locale::Ja), None);
        assert_eq!(
            terms.sla(Priority::P2),
            Some(("High".into(), "4 hours".into()))
        );
    }

    #[test]
    fn a_priority_event_is_reworded_for_its_reader() {
        let mut terms = Terms::default();
        terms.levels.insert(Priority::P2, level("High", "4 hours"));
        let event = Event::PrioritySet {
            priority: Priority::P2,
            sla_name: "High".into(),
            sla_response: "4 hours".into(),
            sla_resolve: "3d".into(),
        };
        let ja = terms
            .reword(&event, Locale::Ja)
            .announcement(Locale::Ja)
            .unwrap();
        assert!(ja.contains("高") && ja.contains("4時間"), "{ja}");
        assert!(ja.contains("解決目標時間は「3営業日」"), "{ja}");
        assert!(!ja.contains("hours") && !ja.contains("High"), "{ja}");
        let en = terms
            .reword(&event, Locale::En)
            .announcement(Locale::En)
            .unwrap();
        assert_eq!(
            en,
            "Priority set to P2 (High): response within 4 hours, resolution within 3 business days."
        );
    }
}
