use super::*;

#[test]
fn headers_and_ids_are_normalized() {
    let raw = b"From: \"Alice A\" <Alice@Customer.test>\r\nTo: support@example.test, Bob <bob@customer.test>\r\nMessage-ID: <a1@customer.test>\r\nIn-Reply-To: <p1@example.test>\r\nReferences: <r0@x.test> <p1@example.test>\r\nSubject: Hello\r\n  world\r\nDelivered-To: support+1.2.abc@example.test\r\n\r\nBody\r\n";
    let mail = InboundMail::parse(raw).unwrap();
    assert_eq!(
        mail.message_id.as_ref().unwrap().as_str(),
        "<a1@customer.test>"
    );
    assert_eq!(mail.in_reply_to.len(), 1);
    assert_eq!(mail.references.len(), 2);
    assert_eq!(
        mail.ancestors()
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>(),
        ["<p1@example.test>", "<r0@x.test>"]
    );
    assert_eq!(
        mail.from.as_ref().unwrap().address.as_str(),
        "alice@customer.test"
    );
    assert_eq!(mail.to.len(), 2);
    assert_eq!(mail.subject, "Hello world");
    assert_eq!(
        mail.delivered_to[0].as_str(),
        "support+1.2.abc@example.test"
    );
    assert_eq!(mail.text, "Body\n");
}

#[test]
fn shown_header_text_is_bounded_and_free_of_bidi_controls() {
    let long = "x".repeat(1 << 20);
    let raw = format!(
        "From: \"Eve\u{202E}gnp.\" <eve@customer.test>\r\nSubject: {long}\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nSee file.\r\n--b\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"invoice\u{202E}fdp.exe\"\r\n\r\nMZ\r\n--b--\r\n"
    );
    let mail = InboundMail::parse(raw.as_bytes()).unwrap();
    assert_eq!(mail.subject.chars().count(), SUBJECT_MAX_CHARS);
    assert!(mail.subject.ends_with('…'));
    assert_eq!(mail.attachments[0].filename, "invoicefdp.exe");
    assert_eq!(mail.from.as_ref().unwrap().name.as_deref(), Some("Evegnp."));

    // Invisible characters go too, from the subject, names and file names.
    let raw = "From: \"Ali\u{200B}ce\" <a@customer.test>\r\nSubject: Re\u{2060}fund\u{FE0F}\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nSee file.\r\n--b\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"../in\u{200D}voice.pdf\"\r\n\r\nMZ\r\n--b--\r\n";
    let mail = InboundMail::parse(raw.as_bytes()).unwrap();
    assert_eq!(mail.subject, "Refund");
    assert_eq!(mail.attachments[0].filename, "invoice.pdf");
    assert_eq!(mail.from.as_ref().unwrap().name.as_deref(), Some("Alice"));
}

#[test]
fn a_long_references_list_keeps_its_root_and_its_last_ids_once() {
    let mut refs = String::new();
    for i in 0..5_000 {
        // Every id twice, folded the way mail clients fold long headers.
        refs.push_str(&format!(" <r{i}@x.test>\r\n <r{i}@x.test>"));
    }
    let raw = format!(
        "From: a@customer.test\r\nMessage-ID: <m@customer.test>\r\nIn-Reply-To: <r4999@x.test>\r\nReferences:{refs}\r\n\r\nHi\r\n"
    );
    let mail = InboundMail::parse(raw.as_bytes()).unwrap();
    let ids = |list: &[MessageId]| {
        list.iter()
            .map(|i| i.as_str().to_string())
            .collect::<Vec<_>>()
    };
    let mut expected = vec!["<r0@x.test>".to_string()];
    expected.extend((5_000 - MAX_THREAD_IDS + 1..5_000).map(|i| format!("<r{i}@x.test>")));
    assert_eq!(ids(&mail.references), expected);
    assert_eq!(ids(&mail.in_reply_to), ["<r4999@x.test>"]);
    let ancestors = ids(&mail.ancestors());
    assert_eq!(ancestors.len(), MAX_THREAD_IDS);
    assert_eq!(ancestors[0], "<r4999@x.test>");
    assert_eq!(ancestors[MAX_THREAD_IDS - 1], "<r0@x.test>");
}

#[test]
fn ids_are_read_from_brackets_or_bare_words() {
    let cases: [(&str, &[&str]); 5] = [
        ("<a@x> <b@x>", &["<a@x>", "<b@x>"]),
        ("<a@x><b@x>", &["<a@x>", "<b@x>"]),
        ("(comment) <a@x>, <a@x>\r\n\t<b@x>", &["<a@x>", "<b@x>"]),
        ("a@x b@x,c@x", &["<a@x>", "<b@x>", "<c@x>"]),
        ("<broken <a@x>", &["<a@x>"]),
    ];
    for (value, expected) in cases {
        let got = ids_of(&HeaderValue::Text(value.into()));
        let got: Vec<&str> = got.iter().map(MessageId::as_str).collect();
        assert_eq!(got, expected, "{value:?}");
    }
}

#[test]
fn a_message_of_too_many_parts_is_refused_before_it_is_parsed() {
    let head = "From: a@customer.test\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n";
    let parts = |n: usize| format!("{head}{}--b--\r\n", "--b\r\n\r\nx\r\n".repeat(n));
    assert!(InboundMail::parse(parts(MAX_MIME_PARTS / 2).as_bytes()).is_ok());
    assert_eq!(
        InboundMail::parse(parts(MAX_MIME_PARTS + 1).as_bytes()),
        Err(ParseError::TooComplex)
    );
    // Delimiters need not start a line for the parser: they count anywhere.
    let inline = format!("{head}{}", "--bx ".repeat(MAX_MIME_PARTS + 1));
    assert_eq!(
        InboundMail::parse(inline.as_bytes()),
        Err(ParseError::TooComplex)
    );
    // The headers are still read, to log and answer the message.
    let mail = InboundMail::parse_headers(parts(MAX_MIME_PARTS + 1).as_bytes()).unwrap();
    assert_eq!(mail.sender().unwrap().as_str(), "a@customer.test");
}

#[test]
fn deeply_nested_mime_is_refused_before_it_is_parsed() {
    let depth = 5_000;
    let mut nested = String::from("From: a@customer.test\r\n");
    for level in 0..depth {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; BOUNDARY*0=\"l{level}\"\r\n\r\n--l{level}\r\n"
        ));
    }
    nested.push_str("\r\nbottom\r\n");
    assert_eq!(
        InboundMail::parse(nested.as_bytes()),
        Err(ParseError::TooComplex)
    );
    let messages = format!(
        "From: a@customer.test\r\n{}\r\nbottom\r\n",
        "Content-Type: message/rfc822\r\n\r\n".repeat(MAX_MIME_PARTS + 1)
    );
    assert_eq!(
        InboundMail::parse(messages.as_bytes()),
        Err(ParseError::TooComplex)
    );
    // An ordinary message with an attached message is not complex.
    let ok = "From: a@customer.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.test\r\n\r\nold\r\n--b--\r\n";
    assert!(!too_complex(ok.as_bytes()));
}

#[test]
fn automatic_headers_are_read() {
    let raw = b"From: a@b.test\nAuto-Submitted: Auto-Replied; owner-email=x\nPrecedence: Bulk\nReturn-Path: <>\nX-Auto-Response-Suppress: All\n\nx";
    let mail = InboundMail::parse(raw).unwrap();
    assert_eq!(mail.auto.auto_submitted.as_deref(), Some("auto-replied"));
    assert_eq!(mail.auto.precedence.as_deref(), Some("bulk"));
    assert!(mail.auto.null_return_path);
    assert!(mail.auto.suppress_auto_response);
}

#[test]
fn empty_input_is_an_error_not_a_panic() {
    assert_eq!(InboundMail::parse(b""), Err(ParseError::Empty));
    assert_eq!(InboundMail::parse(b" \r\n "), Err(ParseError::Empty));
}

#[test]
fn flowed_text_is_unwrapped() {
    let cases = [
        ("plain\n", false, "plain\n"),
        ("one \ntwo\n", false, "one two\n"),
        ("one \ntwo \nthree\nfour\n", false, "one two three\nfour\n"),
        ("del \nsp\n", true, "delsp\n"),
        (" >stuffed\n", false, ">stuffed\n"),
        ("> quoted \n> more\nnew\n", false, "> quoted more\nnew\n"),
        ("-- \nsig\n", false, "-- \nsig\n"),
    ];
    for (input, delsp, expected) in cases {
        assert_eq!(unflow(input, delsp), expected, "{input:?}");
    }
}

#[test]
fn deeply_nested_html_is_flattened_and_keeps_its_text() {
    let depth = 20_000;
    let html = format!(
        "<html><body>{}<p>deep text</p>{}<p>after</p></body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let flat = flatten_html(&html);
    assert_eq!(flat.matches("<div>").count(), MAX_HTML_DEPTH);
    assert_eq!(flat.matches("</div>").count(), MAX_HTML_DEPTH);
    let text = html_to_text(&html);
    assert_eq!(text, "deep text\n\nafter");
}

#[test]
fn ordinary_html_passes_the_flattening_unchanged() {
    let html = "<!DOCTYPE html><html><head><style>p>a{}</style></head><body>\
        <table><tr><td><p>one<br>two<li>x<img src=a.png/><!-- <div> --></td></tr></table>\
        <div><span>three</span></div></body></html>";
    assert!(matches!(flatten_html(html), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn html_is_converted_to_text() {
    let text =
        html_to_text("<p>Hello <b>there</b> &amp; welcome</p><ul><li>one</li><li>two</li></ul>");
    assert!(text.contains("Hello there & welcome"), "{text}");
    assert!(text.contains("one") && text.contains("two"), "{text}");
}

#[test]
fn html_of_very_many_elements_keeps_its_text_but_not_its_tags() {
    let mut html = String::from("<p>start</p>");
    for i in 0..2 * MAX_HTML_ELEMENTS {
        html.push_str(&format!("<span>w{i}</span>"));
    }
    html.push_str("<script>hidden()</script><p>end</p>");
    let flat = flatten_html(&html);
    assert!(flat.matches("<span>").count() < MAX_HTML_ELEMENTS);
    let text = html_to_text(&html);
    assert!(text.starts_with("start"), "{}", &text[..40]);
    assert!(text.contains(&format!("w{}", 2 * MAX_HTML_ELEMENTS - 1)));
    assert!(text.trim_end().ends_with("end"));
    assert!(!text.contains("hidden()"));
}
