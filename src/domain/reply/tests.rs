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
fn recognises_headers_of_more_clients_and_languages() {
    let cases: &[(&str, &str)] = &[
        (
            "sent instead of wrote",
            "On 23.11.2026 09:14, Alice <a@x.test> sent:",
        ),
        (
            "vietnamese gmail",
            "Vào Th 2, 23 thg 11, 2026 vào lúc 09:14 Alice <a@x.test> đã viết:",
        ),
        (
            "korean gmail",
            "2026년 11월 23일 (월) 오전 9:14, Alice <a@x.test>님이 작성:",
        ),
        (
            "korean apple mail",
            "2026. 11. 23. 오전 9:14, Alice <a@x.test> 작성:",
        ),
        (
            "japanese apple mail",
            "2026/11/23 9:14、Alice <a@x.test>のメール:",
        ),
        (
            "turkish gmail",
            "Alice <a@x.test>, 23 Kas 2026 Pzt, 09:14 tarihinde şunu yazdı:",
        ),
        (
            "taiwanese gmail",
            "Alice <a@x.test> 於 2026年11月23日 週一 上午9:14寫道：",
        ),
        ("russian, date first", "23.11.2026 9:14, Alice пишет:"),
        ("reply message separator", "-----Reply Message-----"),
        ("german reply separator", "-----Antwort Nachricht-----"),
        (
            "qq mail separator",
            "------------------ 原始邮件 ------------------",
        ),
        ("samsung separator", "-------- Original message --------"),
    ];
    let mut failures = Vec::new();
    for (name, header) in cases {
        let input = format!("Fixed.\n\n{header}\nold text\n> older\n");
        let got = extract_text(&input);
        if got.reply != "Fixed." {
            failures.push(format!("{name}: {got:?}"));
        }
    }
    let blocks: &[(&str, &str)] = &[
        (
            "date first, no from",
            "Date: Wed, 25 Nov 2026 09:14:02 +0100\nTo: <c@y.test>",
        ),
        (
            "from and date only",
            "From: a@x.test\nDate: Wed, 25 Nov 2026 09:14:02 +0100",
        ),
        (
            "spanish outlook",
            "De: Alice <a@x.test>\nEnviado el: lunes, 23 de noviembre de 2026 9:14\nPara: c@y.test\nAsunto: Re: x",
        ),
        (
            "portuguese outlook",
            "De: Alice <a@x.test>\nEnviado: segunda-feira, 23 de novembro de 2026 09:14\nPara: c@y.test\nAssunto: Re: x",
        ),
        (
            "turkish outlook",
            "Kimden: Alice <a@x.test>\nGönderildi: 23 Kasım 2026 Pazartesi 09:14\nKime: c@y.test\nKonu: Re: x",
        ),
        (
            "vietnamese outlook",
            "Từ: Alice <a@x.test>\nĐã gửi: Thứ Hai, 23 tháng 11, 2026 09:14\nĐến: c@y.test\nChủ đề: Re: x",
        ),
        (
            "korean outlook",
            "보낸 사람: Alice <a@x.test>\n보낸 날짜: 2026년 11월 23일 월요일 오전 9:14\n받는 사람: c@y.test\n제목: Re: x",
        ),
    ];
    for (name, block) in blocks {
        let input = format!("Fixed.\n\n{block}\n\nold text\n");
        let got = extract_text(&input);
        if got.reply != "Fixed." {
            failures.push(format!("{name}: {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Two fields alone stay text unless dated and addressed.
    let text = "Plan:\n\nDate: next week\nTo: the whole team\n\nmore\n";
    assert_eq!(extract_text(text).reply, text.trim());
}

#[test]
fn splits_a_header_glued_to_the_line_before() {
    check(&[
        (
            "reply and header on one line",
            "I restarted it. On Mon, Nov 23, 2026 at 9:14 AM Alice <a@x.test> wrote:\n> Restart it?\n",
            "I restarted it.",
            None,
            Some("On Mon, Nov 23, 2026 at 9:14 AM Alice <a@x.test> wrote:\n> Restart it?"),
            false,
        ),
        (
            "glued header wrapped onto the next line",
            "It works now On Mon, Nov 23, 2026 at 9:14 AM Alice <\na@x.test> wrote:\n> Restart it?\n",
            "It works now",
            None,
            Some("On Mon, Nov 23, 2026 at 9:14 AM Alice <\na@x.test> wrote:\n> Restart it?"),
            false,
        ),
        (
            "dashes before the header",
            "reply\nbla-bla - bla--- On Wed, 4 Nov 2026 at 3:59 PM, a@x.test wrote:\n> Hi\n",
            "reply\nbla-bla - bla",
            None,
            Some("--- On Wed, 4 Nov 2026 at 3:59 PM, a@x.test wrote:\n> Hi"),
            false,
        ),
        (
            "phone footer glued to an attribution, original unquoted",
            "Fixed.\n\nSent from my iPhoneOn Nov 23, 2026, at 9:14 AM, Alice <a@x.test> wrote:\n\nCould you restart it?\n",
            "Fixed.",
            Some("Sent from my iPhone"),
            Some("On Nov 23, 2026, at 9:14 AM, Alice <a@x.test> wrote:\n\nCould you restart it?"),
            false,
        ),
        (
            "phone footer glued to a name and address",
            "Fixed.\n\nSent from Samsung MobileAlice <a@x.test> wrote:\n\nCould you restart it?\n",
            "Fixed.",
            Some("Sent from Samsung Mobile"),
            Some("Alice <a@x.test> wrote:\n\nCould you restart it?"),
            false,
        ),
        (
            "phone footer glued to an original-message separator",
            "Fixed.\n\nSent from Samsung Mobile-------- Original message --------\nFrom: Alice <a@x.test>\nDate: 23/11/2026 09:14\nTo: c@y.test\n\nRestart it?\n",
            "Fixed.",
            Some("Sent from Samsung Mobile"),
            Some(
                "-------- Original message --------\nFrom: Alice <a@x.test>\nDate: 23/11/2026 09:14\nTo: c@y.test\n\nRestart it?",
            ),
            false,
        ),
        (
            "prose with on and a date stays whole",
            "We met. On 3 May 2026 the log wrote:\nerror 42\n",
            "We met. On 3 May 2026 the log wrote:\nerror 42",
            None,
            None,
            false,
        ),
        (
            "a header's own intro is not split",
            "On Mon, 23 Nov 2026 at 9:14, Le Duc <l@x.test> wrote:\n> hi\n\nyes\n",
            "yes",
            None,
            Some("On Mon, 23 Nov 2026 at 9:14, Le Duc <l@x.test> wrote:\n> hi"),
            false,
        ),
    ]);
}

#[test]
fn a_link_wrapped_out_of_a_quote_continues_it() {
    check(&[
        (
            "angle brackets",
            "Thanks.\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> Read the guide\n<http://docs.x.test/a/long/path>\n> and tell us.\n",
            "Thanks.",
            None,
            Some(
                "On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> Read the guide\n<http://docs.x.test/a/long/path>\n> and tell us.",
            ),
            false,
        ),
        (
            "parentheses and a stray quote mark",
            "Blah\n\nOn Thu, 25 Oct 2026 at 3:03 PM, Bob <b@x.test> wrote:\n\n>\n> Post a response\n>\n (http://x.test/c/YzO) >\n> life is short. (http://x.test/c/Yz)\n>\n",
            "Blah",
            None,
            Some(
                "On Thu, 25 Oct 2026 at 3:03 PM, Bob <b@x.test> wrote:\n\n>\n> Post a response\n>\n (http://x.test/c/YzO) >\n> life is short. (http://x.test/c/Yz)\n>",
            ),
            false,
        ),
        (
            "a link broken over two lines",
            "Blah\n\nOn Mon, 24 Sep 2026 at 3:46 PM, bob wrote:\n\n> [Ticket #50] test\n>\n> View ticket (http://x.test/action\n_nonce=3dd518)\n>\n",
            "Blah",
            None,
            Some(
                "On Mon, 24 Sep 2026 at 3:46 PM, bob wrote:\n\n> [Ticket #50] test\n>\n> View ticket (http://x.test/action\n_nonce=3dd518)\n>",
            ),
            false,
        ),
        (
            "a link answering the quote stays an answer",
            "> Where are the docs?\n<https://docs.x.test/>\n",
            "> Where are the docs?\n<https://docs.x.test/>",
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

#[test]
fn sign_offs_of_an_unknown_sender() {
    check(&[
        (
            "dash and a lowercase name",
            "The import works again.\n-jo\n",
            "The import works again.",
            Some("-jo"),
            None,
            false,
        ),
        (
            "dash, space, name after a blank line",
            "The import works again.\n\n- jo\n",
            "The import works again.",
            Some("- jo"),
            None,
            false,
        ),
        (
            "two dashes and a full name",
            "Restarted, it is up.\n\n--Quinn Quartz\n",
            "Restarted, it is up.",
            Some("--Quinn Quartz"),
            None,
            false,
        ),
        (
            "dashed name, then a footer",
            "Looks right.\n\n-Lev.\n\nSent from my HTC smartphone!\n",
            "Looks right.",
            Some("-Lev.\nSent from my HTC smartphone!"),
            None,
            false,
        ),
        (
            "dashed name above quoted history",
            "Deployed.\n\n-jo\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> deploy?\n",
            "Deployed.",
            Some("-jo"),
            Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> deploy?"),
            false,
        ),
        (
            "dash rule, then a name",
            "Is the queue still stuck?\n---\nJo\n",
            "Is the queue still stuck?",
            Some("Jo"),
            None,
            false,
        ),
        (
            "closing, then a name",
            "The export is empty again.\n\nThanks!\nJo\n",
            "The export is empty again.",
            Some("Thanks!\nJo"),
            None,
            false,
        ),
        (
            "closing, blank lines, full name",
            "Thanks,\nthe report is attached\n\nregards\n\n\nQuinn Quartz\n",
            "Thanks,\nthe report is attached",
            Some("regards\n\n\nQuinn Quartz"),
            None,
            false,
        ),
        (
            "closing, name and a short line",
            "Could you reset my password?\n\nThanks in advance,\nQuinn Quartz\nACME Logistics\n",
            "Could you reset my password?",
            Some("Thanks in advance,\nQuinn Quartz\nACME Logistics"),
            None,
            false,
        ),
        (
            "closing, name and a lowercase short line",
            "Please reopen the ticket.\n\nregards\nJo\nacme.test\n",
            "Please reopen the ticket.",
            Some("regards\nJo\nacme.test"),
            None,
            false,
        ),
        (
            "closing and name after a quote that was not answered",
            "I restarted it.\n\n> Could you restart the service?\n\nThanks,\nBob\n",
            "I restarted it.",
            Some("Thanks,\nBob"),
            Some("> Could you restart the service?"),
            false,
        ),
        (
            "a lone -- at the end",
            "The page loads now.\n--\n",
            "The page loads now.",
            None,
            None,
            false,
        ),
        (
            "two -- above a signature",
            "The page loads now.\n--\n--\nRegards,\nJo\n",
            "The page loads now.",
            Some("Regards,\nJo"),
            None,
            false,
        ),
        (
            "japanese: closing, then a name",
            "ログイン画面が表示されません。\n\nよろしくお願いします。\n田中\n",
            "ログイン画面が表示されません。",
            Some("よろしくお願いします。\n田中"),
            None,
            false,
        ),
        (
            "japanese: dash and a name",
            "直りました。\n- 田中\n",
            "直りました。",
            Some("- 田中"),
            None,
            false,
        ),
        (
            "japanese: dash rule, then a name",
            "再起動しました。\n---\n田中 太郎\n",
            "再起動しました。",
            Some("田中 太郎"),
            None,
            false,
        ),
    ]);
}

#[test]
fn reply_lines_that_look_like_sign_offs_stay() {
    check(&[
        (
            "a dash list at the end",
            "Left to do:\n- fix the login page\n- jo\n",
            "Left to do:\n- fix the login page\n- jo",
            None,
            None,
            false,
        ),
        (
            "one dash item below a heading",
            "Left to do:\n\n- deploy\n",
            "Left to do:\n\n- deploy",
            None,
            None,
            false,
        ),
        (
            "a dash item in the middle",
            "Changes:\n-jo wrote the parser\n\nAll done.\n",
            "Changes:\n-jo wrote the parser\n\nAll done.",
            None,
            None,
            false,
        ),
        (
            "a dashed sentence",
            "It works.\n- fix the login page\n",
            "It works.\n- fix the login page",
            None,
            None,
            false,
        ),
        (
            "an option on the last line",
            "Run it again with\n--verbose\n",
            "Run it again with\n--verbose",
            None,
            None,
            false,
        ),
        (
            "japanese: a dashed sentence",
            "直りました。\n- 対応済み\n",
            "直りました。\n- 対応済み",
            None,
            None,
            false,
        ),
        (
            "a closing with more on its line",
            "Deployed it.\n\nThanks! The fix works.\n",
            "Deployed it.\n\nThanks! The fix works.",
            None,
            None,
            false,
        ),
        (
            "a closing, then a sentence",
            "Deployed it.\n\nThanks!\nThe fix works.\n",
            "Deployed it.\n\nThanks!\nThe fix works.",
            None,
            None,
            false,
        ),
        (
            "a closing, then an answer word",
            "Is it deployed?\n\nThanks!\nDone\n",
            "Is it deployed?\n\nThanks!\nDone",
            None,
            None,
            false,
        ),
        (
            "a closing and a name, then a sentence",
            "Deployed it.\n\nThanks,\nJo\nthe log is attached.\n",
            "Deployed it.\n\nThanks,\nJo\nthe log is attached.",
            None,
            None,
            false,
        ),
        (
            "a closing and a name, then a postscript",
            "Deployed it.\n\nThanks,\nJo\nps call me\n",
            "Deployed it.\n\nThanks,\nJo\nps call me",
            None,
            None,
            false,
        ),
        (
            "a closing alone",
            "Deployed it.\n\nThanks!\n",
            "Deployed it.\n\nThanks!",
            None,
            None,
            false,
        ),
        (
            "a closing and name above quoted history stay",
            "This works.\n\nThanks,\nQuinn Quartz\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> try it\n",
            "This works.\n\nThanks,\nQuinn Quartz",
            None,
            Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> try it"),
            false,
        ),
        (
            "an em dash and a name stay",
            "Any feedback is welcome.\n\n\u{2014}Quinn\n",
            "Any feedback is welcome.\n\n\u{2014}Quinn",
            None,
            None,
            false,
        ),
        (
            "a dash rule below a heading, then a word",
            "Result:\n---\nGreen\n",
            "Result:\n---\nGreen",
            None,
            None,
            false,
        ),
        (
            "only a sign-off keeps it",
            "Thanks!\nJo\n",
            "Thanks!\nJo",
            None,
            None,
            false,
        ),
        (
            "japanese: a closing, then a sentence",
            "修正しました。\n\nありがとうございます。\n確認しました\n",
            "修正しました。\n\nありがとうございます。\n確認しました",
            None,
            None,
            false,
        ),
        (
            "japanese: a dash list",
            "残り:\n- ログイン画面\n- 田中\n",
            "残り:\n- ログイン画面\n- 田中",
            None,
            None,
            false,
        ),
    ]);
}

#[test]
fn phone_and_client_footers() {
    check(&[
        (
            "samsung",
            "Yes, that is the invoice.\n\nSent from Samsung Mobile\n",
            "Yes, that is the invoice.",
            Some("Sent from Samsung Mobile"),
            None,
            false,
        ),
        (
            "samsung above its original message",
            "Yes.\n\nSent from Samsung Mobile\n\n-------- Original message --------\nFrom: Alice <a@x.test>\nDate: 23/11/2026 09:14 (GMT+01:00)\nTo: Bob <b@x.test>\nSubject: invoice\n\nIs it this one?\n",
            "Yes.",
            Some("Sent from Samsung Mobile"),
            Some(
                "-------- Original message --------\nFrom: Alice <a@x.test>\nDate: 23/11/2026 09:14 (GMT+01:00)\nTo: Bob <b@x.test>\nSubject: invoice\n\nIs it this one?",
            ),
            false,
        ),
        (
            "blackberry, english and french",
            "Got it.\nSent wirelessly from my BlackBerry device on the Bell network.\nEnvoyé sans fil par mon terminal mobile BlackBerry interconnecté via le réseau Bell.\n",
            "Got it.",
            Some(
                "Sent wirelessly from my BlackBerry device on the Bell network.\nEnvoyé sans fil par mon terminal mobile BlackBerry interconnecté via le réseau Bell.",
            ),
            None,
            false,
        ),
        (
            "blackberry, german",
            "Passt.\n\nVon meinem BlackBerry 10-Smartphone gesendet.\n",
            "Passt.",
            Some("Von meinem BlackBerry 10-Smartphone gesendet."),
            None,
            false,
        ),
        (
            "blackberry, spanish",
            "Listo.\n\nEnviado de forma inalámbrica desde mi BlackBerry\n",
            "Listo.",
            Some("Enviado de forma inalámbrica desde mi BlackBerry"),
            None,
            false,
        ),
        (
            "spanish phone",
            "Listo.\n\nEnviado de mi iPhone\n",
            "Listo.",
            Some("Enviado de mi iPhone"),
            None,
            false,
        ),
        (
            "japanese: blackberry and samsung",
            "了解です。\n\nBlackBerry® スマートフォンから送信\n",
            "了解です。",
            Some("BlackBerry® スマートフォンから送信"),
            None,
            false,
        ),
        (
            "japanese: galaxy, sent",
            "了解です。\n\nGalaxy から送信されました\n",
            "了解です。",
            Some("Galaxy から送信されました"),
            None,
            false,
        ),
        (
            "sparrow below a separator",
            "Works for me.\n\n-- \nQuinn Quartz\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)\n",
            "Works for me.",
            Some("Quinn Quartz\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)"),
            None,
            false,
        ),
        (
            "sparrow with its link wrapped, a name above",
            "Works for me.\n\nQuinn Quartz\nSent with Sparrow\n(http://www.sparrowmailapp.com/?sig)\n\nOn Monday, 23 November 2026 at 09:14, Alice wrote:\n> does it?\n",
            "Works for me.",
            Some("Quinn Quartz\nSent with Sparrow\n(http://www.sparrowmailapp.com/?sig)"),
            Some("On Monday, 23 November 2026 at 09:14, Alice wrote:\n> does it?"),
            false,
        ),
        (
            "sparrow after a lone --",
            "Works for me.\n\nThanks,\nJo\n\n--\nSent with Sparrow\n",
            "Works for me.",
            Some("Thanks,\nJo\nSent with Sparrow"),
            None,
            false,
        ),
        (
            "samsung, german",
            "Passt.\n\nVon meinem Samsung Galaxy Smartphone gesendet.\n",
            "Passt.",
            Some("Von meinem Samsung Galaxy Smartphone gesendet."),
            None,
            false,
        ),
        (
            "samsung, french",
            "C'est bon.\n\nEnvoyé depuis mon smartphone Samsung Galaxy.\n",
            "C'est bon.",
            Some("Envoyé depuis mon smartphone Samsung Galaxy."),
            None,
            false,
        ),
        (
            "samsung, spanish",
            "Listo.\n\nEnviado desde mi smartphone Samsung Galaxy.\n",
            "Listo.",
            Some("Enviado desde mi smartphone Samsung Galaxy."),
            None,
            false,
        ),
        (
            "japanese: samsung and blackberry wireless",
            "了解です。\n\nSamsung Mobileから送信\nBlackBerryからワイヤレスで送信\n",
            "了解です。",
            Some("Samsung Mobileから送信\nBlackBerryからワイヤレスで送信"),
            None,
            false,
        ),
        (
            "blackberry wireless, german",
            "Passt.\n\nDrahtlos gesendet von meinem BlackBerry\n",
            "Passt.",
            Some("Drahtlos gesendet von meinem BlackBerry"),
            None,
            false,
        ),
        (
            "sparrow with its link in angle brackets",
            "Works for me.\n\nSent with Sparrow <http://www.sparrowmailapp.com/?sig>\n",
            "Works for me.",
            Some("Sent with Sparrow <http://www.sparrowmailapp.com/?sig>"),
            None,
            false,
        ),
        (
            "a link below text is no footer",
            "See the guide:\n(http://a.test/guide)\n",
            "See the guide:\n(http://a.test/guide)",
            None,
            None,
            false,
        ),
        (
            "spanish sentence that starts like a footer stays",
            "Enviado de nuevo el archivo.\n",
            "Enviado de nuevo el archivo.",
            None,
            None,
            false,
        ),
        (
            "sent wirelessly in the middle is text",
            "Sent wirelessly from the depot, the log:\nerror\n",
            "Sent wirelessly from the depot, the log:\nerror",
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
            "unknown sender: a closing and a name go too",
            "",
            "Hey!\n\nThanks!\nRoman\n",
            "Hey!",
            Some("Thanks!\nRoman"),
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
            "text, quote, closing alone",
            "I restarted it.\n\n> Could you restart the service?\n\nThanks,\n",
            "I restarted it.\n\nThanks,",
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
            "Hi,\n\n> one?\n\nyes\n\n> two?\n\nno",
            Some("Thanks,\nBob"),
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
        "Done. On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:",
        "Sent from Samsung Mobile-------- Original message --------",
        "Sent from my iPhoneOn 23 Nov 2026, at 09:14, Alice <a@x.test> wrote:",
        "<http://a.test/long/link>",
        "-roman",
        "Thanks!",
        "Roman",
        "---",
        "+43 1 234 5678",
        "Date: Wed, 25 Nov 2026 09:14:02 +0100",
    ];

    /// A line whose two halves each end and start a line of the output: a
    /// header glued to the text before it, split (nothing lost).
    fn split_at_a_header(line: &str, all: &str) -> bool {
        line.char_indices().skip(1).any(|(p, _)| {
            let (a, b) = line.split_at(p);
            let (a, b) = (a.trim_end(), b.trim());
            !a.is_empty()
                && !b.is_empty()
                && all.contains(&format!("{a}\n"))
                && all.contains(&format!("\n{b}"))
        })
    }

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
                prop_assert!(
                    all.contains(line) || split_at_a_header(line, &all),
                    "{line:?} lost from {text:?}: {got:?}"
                );
            }
            let _ = extract_html(&text);
            let _ = extract_text_from(&text, &Sender::parse("Roman Lebedev <roman@x.test>"));
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

#[test]
fn html_signature_containers_are_signatures() {
    let cases = [
        (
            "gmail signature above the quote, the quoted one stays quoted",
            "<div>Fixed.</div><div class=\"gmail_signature\">Bob Builder<div>+43 1 234 5678</div></div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, 23 Nov 2026 at 09:14, Alice &lt;a@x.test&gt; wrote:</div><blockquote class=\"gmail_quote\">old<div class=\"gmail_signature\">Alice</div></blockquote></div>",
            "Fixed.",
            Some("Bob Builder\n+43 1 234 5678"),
        ),
        (
            "outlook signature above the original",
            "<div>Done.</div><div id=\"Signature\"><p>Claire Martin</p></div><div id=\"appendonsend\"></div><div id=\"divRplyFwdMsg\">From: Alice</div><div>old</div>",
            "Done.",
            Some("Claire Martin"),
        ),
        (
            "a signature inside a quote is no signature of the reply",
            "<div>Done.</div><blockquote><div id=\"Signature\">Alice</div></blockquote>",
            "Done.",
            None,
        ),
        (
            "only a signature keeps it",
            "<div class=\"gmail_signature\">Bob Builder</div>",
            "Bob Builder",
            None,
        ),
        (
            "a signature element running into the original is left to the text",
            "<div class=\"gmail_signature\">Bob<div id=\"appendonsend\"></div>old</div>",
            "Bob",
            None,
        ),
        (
            "an unclosed signature element is left to the text",
            "<div>Done.</div><div class=\"gmail_signature\">Bob",
            "Done.\nBob",
            None,
        ),
    ];
    for (name, html, reply, signature) in cases {
        let got = extract_html(html);
        assert_eq!(got.reply, reply, "{name}: {got:?}");
        assert_eq!(got.signature.as_deref(), signature, "{name}: {got:?}");
    }
}
