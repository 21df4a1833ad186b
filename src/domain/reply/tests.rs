use super::*;

/// (name, input, reply, signature, quoted, forwarded)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for (name, input, reply, signature, quoted, forwarded) in cases {
        let got = extract_text(input);
        let want = Extracted {
            reply: reply.to_string(),
            signature: signature.map(str::to_string),
            quoted: quoted.map(str::to_string),
            forwarded: *forwarded,
        };
        if got != want {
            failures.push(format!("{name}:\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cuts_at_the_marker_and_quote_headers() {
    check(&[
        (
            "marker",
            "Thanks!\n\n--- Reply above this line ---\nold",
            "Thanks!",
            None,
            Some("--- Reply above this line ---\nold"),
            false,
        ),
        (
            "gmail english",
            "Sounds good.\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> hi\n",
            "Sounds good.",
            None,
            Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> hi"),
            false,
        ),
        (
            "header wrapped over three lines",
            "Yes.\nLe 23 nov. 2026 09:14, \"Alice\"\n<a@x.test>\na écrit :\n\n> hi\n",
            "Yes.",
            None,
            Some("Le 23 nov. 2026 09:14, \"Alice\"\n<a@x.test>\na écrit :\n\n> hi"),
            false,
        ),
        (
            "header with an unclosed bracket above",
            "Da.\n\n23 нояб. 2026 г. 9:14 пользователь \"Alice\" <\na@x.test> написал:\n\n> hi\n",
            "Da.",
            None,
            Some("23 нояб. 2026 г. 9:14 пользователь \"Alice\" <\na@x.test> написал:\n\n> hi"),
            false,
        ),
        (
            "japanese gmail without a verb",
            "了解です。\n\n2026年11月23日(月) 9:14 Alice <a@x.test>:\n> hi\n",
            "了解です。",
            None,
            Some("2026年11月23日(月) 9:14 Alice <a@x.test>:\n> hi"),
            false,
        ),
        (
            "thunderbird name only, quote below",
            "Done.\n\nAlice Anders wrote:\n> please\n",
            "Done.",
            None,
            Some("Alice Anders wrote:\n> please"),
            false,
        ),
        (
            "prose starting like a header stays",
            "On 3 servers the job fails.\nThe scheduler log wrote:\nerror 42\n",
            "On 3 servers the job fails.\nThe scheduler log wrote:\nerror 42",
            None,
            None,
            false,
        ),
        (
            "prose ending in wrote: without evidence stays",
            "This is what the manual wrote:\nrestart the service\n",
            "This is what the manual wrote:\nrestart the service",
            None,
            None,
            false,
        ),
        (
            "outlook original message",
            "Done.\n\n-----Original Message-----\nFrom: x\n",
            "Done.",
            None,
            Some("-----Original Message-----\nFrom: x"),
            false,
        ),
        (
            "outlook header block",
            "Done.\n\n________________________________\nFrom: Alice <a@x.test>\nSent: Monday\nTo: support\nSubject: Re: x\n\nold\n",
            "Done.",
            None,
            Some(
                "________________________________\nFrom: Alice <a@x.test>\nSent: Monday\nTo: support\nSubject: Re: x\n\nold",
            ),
            false,
        ),
        (
            "pasted raw headers are content",
            "The bounce:\n\nFrom: a@x.test\nTo: b@y.test\nSubject: hi\nMessage-ID: <1@x>\n",
            "The bounce:\n\nFrom: a@x.test\nTo: b@y.test\nSubject: hi\nMessage-ID: <1@x>",
            None,
            None,
            false,
        ),
    ]);
}

#[test]
fn keeps_inline_answers_and_code() {
    check(&[
        (
            "bottom quote without header",
            "> question?\nanswer\n\n> old\n> older\n",
            "> question?\nanswer",
            None,
            Some("> old\n> older"),
            false,
        ),
        (
            "interleaved after a header",
            "Hi,\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> one?\n\nyes\n\n> two?\n\nno\n",
            "Hi,\n\n> one?\n\nyes\n\n> two?\n\nno",
            None,
            Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:"),
            false,
        ),
        (
            "bottom-post after a header",
            "On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> one?\n\nyes\n",
            "yes",
            None,
            Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> one?"),
            false,
        ),
        (
            "fenced code with > and a header-like line",
            "Try:\n\n```\nif a > b:\n> not a quote\nOn 1 May 2026, x wrote:\n```\n",
            "Try:\n\n```\nif a > b:\n> not a quote\nOn 1 May 2026, x wrote:\n```",
            None,
            None,
            false,
        ),
        (
            "python prompt",
            "It fails:\n\n>>> import foo\n>>> foo.run()\nValueError\n",
            "It fails:\n\n>>> import foo\n>>> foo.run()\nValueError",
            None,
            None,
            false,
        ),
        (
            "indented code",
            "Config:\n\n    > redirect\n    -- \n",
            "Config:\n\n    > redirect\n    --",
            None,
            None,
            false,
        ),
        (
            "unclosed fence is text",
            "```\nThanks\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> hi\n",
            "```\nThanks",
            None,
            Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> hi"),
            false,
        ),
        (
            "quoted marker above an inline answer",
            "> --- Reply above this line ---\n> Can you send logs?\n\nAttached.\n",
            "> Can you send logs?\n\nAttached.",
            None,
            Some("> --- Reply above this line ---"),
            false,
        ),
    ]);
}

#[test]
fn splits_signatures_and_footers() {
    check(&[
        (
            "dash dash space",
            "Fixed, thanks.\n-- \nAlice Anders\nACME\n",
            "Fixed, thanks.",
            Some("Alice Anders\nACME"),
            None,
            false,
        ),
        (
            "iphone",
            "ok\n\nSent from my iPhone\n",
            "ok",
            Some("Sent from my iPhone"),
            None,
            false,
        ),
        (
            "german footer above a quote",
            "ok\n\nVon meinem iPhone gesendet\n\n> alt\n",
            "ok",
            Some("Von meinem iPhone gesendet"),
            Some("> alt"),
            false,
        ),
        (
            "signature after the trailing quote",
            "ok\n\n> old\n\n-- \nBob\n",
            "ok",
            Some("Bob"),
            Some("> old"),
            false,
        ),
        (
            "underscores above a short signature",
            "ok\n\n____\nBob Builder\n",
            "ok",
            Some("Bob Builder"),
            None,
            false,
        ),
        (
            "a long part after -- is not a signature",
            "a\n--\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n",
            "a\n--\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16",
            None,
            None,
            false,
        ),
        (
            "sent from in the middle is text",
            "Sent from the staging server, the log:\nerror\n",
            "Sent from the staging server, the log:\nerror",
            None,
            None,
            false,
        ),
    ]);
}

/// (name, sender, input, reply, signature)
type SenderCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

fn check_from(cases: &[SenderCase]) {
    let mut failures = Vec::new();
    for (name, from, input, reply, signature) in cases {
        let got = extract_text_from(input, &Sender::parse(from));
        if got.reply != *reply || got.signature.as_deref() != *signature {
            failures.push(format!(
                "{name}:\n  got  {:?} / {:?}\n  want {reply:?} / {signature:?}",
                got.reply, got.signature
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_senders_own_name_is_a_signature() {
    const ROMAN: &str = "Roman Lebedev <roman@example.test>";
    check_from(&[
        (
            "dash and name",
            ROMAN,
            "Hey!\n-roman\n",
            "Hey!",
            Some("-roman"),
        ),
        (
            "dash, space, name",
            ROMAN,
            "Hey!\n\n- Roman\n",
            "Hey!",
            Some("- Roman"),
        ),
        (
            "closing and name",
            ROMAN,
            "Hey!\n\nThanks!\nRoman\n",
            "Hey!",
            Some("Thanks!\nRoman"),
        ),
        (
            "closing, blank, name",
            ROMAN,
            "Hey!\n\nBest regards,\n\nRoman Lebedev\n",
            "Hey!",
            Some("Best regards,\n\nRoman Lebedev"),
        ),
        (
            "closing and name on one line",
            ROMAN,
            "Hey!\n\nCheers, Roman\n",
            "Hey!",
            Some("Cheers, Roman"),
        ),
        (
            "dash rule above",
            ROMAN,
            "Hey!\n---\nRoman\n",
            "Hey!",
            Some("Roman"),
        ),
        ("initials", ROMAN, "Done.\n\n-RL\n", "Done.", Some("-RL")),
        (
            "contact lines below the name",
            ROMAN,
            "Done.\n\nRoman Lebedev\nSupport Engineer, ACME Ltd.\n+43 1 234 5678\n",
            "Done.",
            Some("Roman Lebedev\nSupport Engineer, ACME Ltd.\n+43 1 234 5678"),
        ),
        (
            "someone else's name stays",
            ROMAN,
            "Please ask\nAlice\n",
            "Please ask\nAlice",
            None,
        ),
        (
            "only a signature keeps it",
            ROMAN,
            "--\nRoman\n",
            "--\nRoman",
            None,
        ),
        (
            "only a name keeps it",
            ROMAN,
            "Thanks!\nRoman\n",
            "Thanks!\nRoman",
            None,
        ),
        (
            "a sentence with the name stays",
            ROMAN,
            "It works.\n\nRoman is happy now\n",
            "It works.\n\nRoman is happy now",
            None,
        ),
        (
            "content after the name stays",
            ROMAN,
            "It works.\n\nRoman\nThe log is attached below.\n",
            "It works.\n\nRoman\nThe log is attached below.",
            None,
        ),
        (
            "unknown sender: sign-off stays",
            "",
            "Hey!\n\nThanks!\nRoman\n",
            "Hey!\n\nThanks!\nRoman",
            None,
        ),
        (
            "anyone: contact lines below a dash rule",
            "",
            "Done.\n\n---\nQuinn Quartz\n+43 1 234 5678\nwww.customer.test\n",
            "Done.",
            Some("Quinn Quartz\n+43 1 234 5678\nwww.customer.test"),
        ),
        (
            "anyone: a dash rule above prose stays",
            "",
            "Steps:\n---\nOpen it\nClose it\n",
            "Steps:\n---\nOpen it\nClose it",
            None,
        ),
    ]);
}

#[test]
fn a_quote_followed_only_by_a_sign_off_goes() {
    check(&[
        (
            "text, quote, closing and name",
            "I restarted it.\n\n> Could you restart the service?\n\nThanks,\nBob\n",
            "I restarted it.\n\nThanks,\nBob",
            None,
            Some("> Could you restart the service?"),
            false,
        ),
        (
            "header, quote, closing and name on one line",
            "Test reply\nOn Fri, 6 May 2026 at 18:03, Alice <a@x.test> wrote:\n\n> Test\n> Alice\n\nRegards, Bob\n",
            "Test reply\n\nRegards, Bob",
            None,
            Some("On Fri, 6 May 2026 at 18:03, Alice <a@x.test> wrote:\n\n> Test\n> Alice"),
            false,
        ),
        (
            "inline answers stay",
            "Hi,\n\n> one?\n\nyes\n\n> two?\n\nno\n\nThanks,\nBob\n",
            "Hi,\n\n> one?\n\nyes\n\n> two?\n\nno\n\nThanks,\nBob",
            None,
            None,
            false,
        ),
        (
            "a quote answered with thanks and more stays",
            "Hi,\n\n> Does it work now?\n\nYes, thanks!\n",
            "Hi,\n\n> Does it work now?\n\nYes, thanks!",
            None,
            None,
            false,
        ),
        (
            "no text above the quote: kept",
            "> Could you restart it?\n\nThanks,\nBob\n",
            "> Could you restart it?\n\nThanks,\nBob",
            None,
            None,
            false,
        ),
    ]);
    check_from(&[(
        "the sender's name alone after the quote",
        "Bob Builder <bob@example.test>",
        "Done.\n\n> Please check.\n\n-bob\n",
        "Done.",
        Some("-bob"),
    )]);
}

#[test]
fn forwards_are_content() {
    check(&[
        (
            "gmail forward",
            "FYI\n\n---------- Forwarded message ---------\nFrom: x\n\nbody\n",
            "FYI\n\n---------- Forwarded message ---------\nFrom: x\n\nbody",
            None,
            None,
            true,
        ),
        (
            "apple quoted forward",
            "See below.\n\n> Begin forwarded message:\n>\n> From: x\n> body\n",
            "See below.\n\n> Begin forwarded message:\n>\n> From: x\n> body",
            None,
            None,
            true,
        ),
        (
            "forward inside the quoted history is a quote",
            "ok\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> ---------- Forwarded message ---------\n> body\n",
            "ok",
            None,
            Some(
                "On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> ---------- Forwarded message ---------\n> body",
            ),
            false,
        ),
    ]);
}

#[test]
fn an_only_quote_falls_back_to_the_full_text_for_the_comment() {
    let text = "> just a quote\n";
    let got = extract_text(text);
    assert_eq!(got.reply, "");
    assert_eq!(got.quoted.as_deref(), Some("> just a quote"));
    assert_eq!(got.comment_text(text), "> just a quote");
}

#[test]
fn hostile_input_never_panics() {
    let long = "é".repeat(600_000);
    let cases: [(&str, String); 6] = [
        ("one huge line", long.clone()),
        ("one huge quoted line", format!("> {long}\nok")),
        ("nul bytes", "a\0b\n\0\n> q\0\n".to_string()),
        ("crlf", "ok\r\n\r\n> q\r\n".to_string()),
        ("many headers", "On 1 Jan 2026, x wrote:\n".repeat(20_000)),
        ("many fences", "```\n~~~~\n````\n".repeat(10_000)),
    ];
    for (name, input) in cases {
        let got = extract_text(&input);
        assert!(!got.reply.contains('\0'), "{name}");
        let _ = extract_html(&input);
    }
    assert_eq!(extract_text("ok\r\n\r\n> q\r\n").reply, "ok");
    assert_eq!(extract_text("a\0b").reply, "ab");
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    /// Lines that exercise every kind, including hostile ones.
    const LINES: &[&str] = &[
        "",
        "Thanks, fixed.",
        "second line of the answer",
        "> question?",
        ">> older",
        ">",
        "On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:",
        "Alice wrote:",
        "Le 23 nov. 2026 à 09:14, Alice",
        "a écrit :",
        "2026年11月23日(月) 9:14 Alice <a@x.test>:",
        "From: Alice <a@x.test>",
        "Sent: Monday",
        "To: Bob",
        "Subject: hi",
        "-----Original Message-----",
        "---------- Forwarded message ---------",
        "> Begin forwarded message:",
        "-- ",
        "--",
        "____",
        "***",
        "Sent from my iPhone",
        "```",
        "~~~",
        "    code > x",
        ">>> prompt()",
        MARKER,
        "> --- Reply above this line ---",
        "\u{1427}",
        "é\0ß",
        "\r",
        "[1]: https://a.test/",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_written_line_lands_in_a_part(picks in prop::collection::vec(0..LINES.len(), 0..40)) {
            let text = picks.iter().map(|&i| LINES[i]).collect::<Vec<_>>().join("\n");
            let got = extract_text(&text);
            prop_assert!(!got.reply.contains('\0'));
            let all = format!(
                "{}\n{}\n{}",
                got.reply,
                got.signature.clone().unwrap_or_default(),
                got.quoted.clone().unwrap_or_default()
            );
            for line in normalize(&text).lines().filter(|l| has_letters(l)) {
                prop_assert!(all.contains(line), "{line:?} lost from {text:?}: {got:?}");
            }
            let _ = extract_html(&text);
        }
    }
}

#[test]
fn html_uses_the_structure_of_outlook_and_yahoo() {
    let cases = [
        (
            "outlook web",
            "<div>Done.</div><div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\"><b>From:</b> Alice</div><div>old</div>",
            "Done.",
        ),
        (
            "yahoo",
            "<div>Done.</div><div class=\"yahoo_quoted\"><div>On Monday, Alice wrote:</div><div>old</div></div>",
            "Done.",
        ),
        (
            "gmail blockquote and footnotes",
            "<div>See <a href=\"http://a.test/\">this</a>.</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, 23 Nov 2026 at 09:14, Alice &lt;a@x.test&gt; wrote:</div><blockquote class=\"gmail_quote\">old <a href=\"http://b.test/\">link</a></blockquote></div>",
            "See [this][1].\n\n[1]: http://a.test/",
        ),
    ];
    for (name, html, reply) in cases {
        let got = extract_html(html);
        assert_eq!(got.reply, reply, "{name}: {got:?}");
        assert!(got.quoted.is_some_and(|q| q.contains("old")), "{name}");
    }
}
