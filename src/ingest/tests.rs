use super::Content;
use crate::domain::{mail::InboundMail, reply};
use crate::tickets::cmd as commands;

/// A large body is held once (README "Hostile input"): moved from the
/// extracted reply through the command parse into the comment, with or
/// without leading commands, not copied at each step; the comment is
/// the text the copying steps made.
#[test]
fn content_holds_a_large_body_once() {
    let words = "word ".repeat(200_000);
    for (text, n_commands) in [
        (format!("{words}\r\n"), 0),
        (format!("#priority P2\r\n\r\n{words}\r\nthanks\r\n"), 1),
    ] {
        let raw = format!(
            "From: c1@customer.test\r\nTo: support@example.test\r\nSubject: long\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
        );
        let mail = InboundMail::parse(raw.as_bytes()).expect("parses");
        let copied = commands::parse(&reply::extract_mail(&mail).comment_text(&mail.text));
        let want = if copied.commands.is_empty() {
            reply::extract_mail(&mail).comment_text(&mail.text)
        } else {
            copied.rest
        };
        let mut mail = mail;
        let content = Content::of(&mut mail);
        assert_eq!(content.commands.commands.len(), n_commands);
        assert!(content.body.len() > 900_000, "{}", content.body.len());
        assert!(content.body == want, "the comment text changed");
        assert_eq!(content.extracted.reply.len(), 0, "the reply is a copy");
        assert_eq!(content.commands.rest.len(), 0, "the rest is a copy");
        assert!(mail.text.is_empty(), "the mail's text is a copy");
    }
}
