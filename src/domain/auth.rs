//! Sender proof from `Authentication-Results` (RFC 8601). Anyone can write any
//! From header; only the verdict of our own MTA, identified by the configured
//! authserv-id, says whether the sender's domain signed or aligned the message.

/// One `method=result` entry with its properties (`header.d=…`, `header.from=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResult {
    pub method: String,
    pub result: String,
    pub properties: Vec<(String, String)>,
}

impl AuthResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One header value: whose verdict it is, and the verdict when it reads per
/// RFC 8601 §2.2 (`None` when it does not: a malformed header proves nothing,
/// and it still hides any header of the same authserv-id below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub authserv_id: String,
    pub results: Option<Vec<AuthResult>>,
}

/// A lexical item of RFC 8601 §2.2: CFWS (RFC 5322 §3.2.2) is dropped and
/// only remembered as a break between words; quoted strings (§3.2.4) keep
/// their specials, so a `;` or `=` inside one never ends a result.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lexeme {
    /// A run of text (atoms, dots, `@`, `/` and quoted strings) with no CFWS
    /// inside, e.g. `header.d`, `"x;y"@evil.test`.
    Word(String),
    Semicolon,
    Equals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// One pass over the value, O(n) time and at most n bytes of output: comments
/// nest by a counter, never by recursion.
fn lex(value: &str) -> Result<Vec<Lexeme>, Malformed> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted_word = false;
    let mut chars = value.chars();
    let end_word = |out: &mut Vec<Lexeme>, word: &mut String, quoted: &mut bool| {
        if !word.is_empty() || *quoted {
            out.push(Lexeme::Word(std::mem::take(word)));
        }
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                end_word(&mut out, &mut word, &mut quoted_word);
                let mut depth = 1usize;
                while depth > 0 {
                    match chars.next().ok_or(Malformed)? {
                        '\\' => {
                            chars.next().ok_or(Malformed)?;
                        }
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            ')' => return Err(Malformed),
            '"' => {
                quoted_word = true;
                loop {
                    match chars.next().ok_or(Malformed)? {
                        '\\' => word.push(chars.next().ok_or(Malformed)?),
                        '"' => break,
                        c => word.push(c),
                    }
                }
            }
            ';' | '=' => {
                end_word(&mut out, &mut word, &mut quoted_word);
                out.push(if c == ';' {
                    Lexeme::Semicolon
                } else {
                    Lexeme::Equals
                });
            }
            c if c.is_whitespace() => end_word(&mut out, &mut word, &mut quoted_word),
            c => word.push(c),
        }
    }
    end_word(&mut out, &mut word, &mut quoted_word);
    Ok(out)
}

/// Parses one header value: the authserv-id and its results (RFC 8601 §2.2).
/// `None` only when there is no authserv-id to tell whose header it is.
pub fn parse(value: &str) -> Option<Parsed> {
    let Ok(lexemes) = lex(value) else {
        // Whose it is still counts (see `Parsed`): the first word, when the
        // breakage comes after it.
        let authserv_id = value
            .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
            .find(|w| !w.is_empty())?;
        return Some(Parsed {
            authserv_id: authserv_id.to_ascii_lowercase(),
            results: None,
        });
    };
    let mut segments = lexemes.split(|l| *l == Lexeme::Semicolon);
    let head = segments.next()?;
    let Some(Lexeme::Word(id)) = head.first() else {
        return None;
    };
    let authserv_id = id.to_ascii_lowercase();
    // `authserv-id [CFWS authres-version]`: a version is digits alone.
    let head_ok = match &head[1..] {
        [] => true,
        [Lexeme::Word(v)] => v.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    };
    let results = head_ok
        .then(|| segments.map(resinfo).collect::<Option<Vec<_>>>())
        .flatten()
        .map(|r| r.into_iter().flatten().collect());
    Some(Parsed {
        authserv_id,
        results,
    })
}

/// One `resinfo` (RFC 8601 §2.2): `method[/version]=result` then
/// `name=value` pairs (`reason=` among them). `Some(None)` for `none`.
fn resinfo(segment: &[Lexeme]) -> Option<Option<AuthResult>> {
    use Lexeme::{Equals, Word};
    match segment {
        // A trailing `;` (some MTAs write one) ends nothing.
        [] => Some(None),
        [Word(none)] if none.eq_ignore_ascii_case("none") => Some(None),
        [Word(method), Equals, Word(result), rest @ ..] => {
            if rest.len() % 3 != 0 {
                return None;
            }
            let mut properties = Vec::with_capacity(rest.len() / 3);
            for pair in rest.chunks(3) {
                let [Word(name), Equals, Word(value)] = pair else {
                    return None;
                };
                properties.push((name.to_ascii_lowercase(), value.to_ascii_lowercase()));
            }
            let method = method.split('/').next().unwrap_or("").trim();
            Some(Some(AuthResult {
                method: method.to_ascii_lowercase(),
                result: result.to_ascii_lowercase(),
                properties,
            }))
        }
        _ => None,
    }
}

/// The organizational domain of `name` (RFC 7489 §3.2): its public suffix
/// plus one label. The list's implicit `*` rule makes an unlisted TLD its own
/// suffix (`example.test` is organizational); a public suffix itself
/// (`com`, `co.uk`, `test`) has none, so it aligns with nothing.
fn organizational_domain(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return None;
    }
    let domain = psl::domain(name.as_bytes())?;
    std::str::from_utf8(domain.as_bytes())
        .ok()
        .map(str::to_string)
}

/// Relaxed identifier alignment (RFC 7489 §3.1.1): the signing domain and
/// the From domain share an organizational domain. `header.i` may carry a
/// local part (`sam@example.test`, `@example.test`): its domain counts.
fn aligned(signer: &str, sender_domain: &str) -> bool {
    let signer = signer.rsplit_once('@').map_or(signer, |(_, d)| d);
    match (
        organizational_domain(signer),
        organizational_domain(sender_domain),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Whether our MTA vouched for `sender_domain`: DMARC passed for it, or a DKIM
/// signature aligned with it (RFC 7489 §3.1) verified. Only the topmost header
/// with the trusted authserv-id counts: our MTA adds its verdict on top and
/// strips look-alikes (RFC 8601 §5); anything below came with the message.
pub fn sender_verified(headers: &[String], trusted_authserv_id: &str, sender_domain: &str) -> bool {
    let trusted = trusted_authserv_id.trim().to_ascii_lowercase();
    if trusted.is_empty() {
        return false;
    }
    let domain = sender_domain.to_ascii_lowercase();
    let Some(Parsed {
        results: Some(results),
        ..
    }) = headers
        .iter()
        .filter_map(|h| parse(h))
        .find(|p| p.authserv_id == trusted)
    else {
        return false;
    };
    results.iter().any(|r| {
        r.result == "pass"
            && match r.method.as_str() {
                "dmarc" => r.property("header.from").is_some_and(|d| d == domain),
                "dkim" => r
                    .property("header.d")
                    .or_else(|| r.property("header.i"))
                    .is_some_and(|d| aligned(d, &domain)),
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> Vec<String> {
        vec![v.to_string()]
    }

    #[test]
    fn headers_parse_with_comments_and_properties() {
        let parsed =
            parse("mx.example.test (Postfix 3.7); dkim=pass (2048-bit key) header.d=customer.test header.s=s1; spf=fail smtp.mailfrom=x@y")
                .unwrap();
        assert_eq!(parsed.authserv_id, "mx.example.test");
        let results = parsed.results.unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].method, "dkim");
        assert_eq!(results[0].property("header.d"), Some("customer.test"));
        assert_eq!(results[1].result, "fail");
        assert_eq!(
            parse("mx.example.test; none").unwrap().results,
            Some(vec![])
        );
    }

    #[test]
    fn only_our_mta_verdict_for_the_sender_domain_counts() {
        let trusted = "mx.example.test";
        let cases: Vec<(&str, Vec<String>, &str, bool)> = vec![
            (
                "dmarc pass",
                h("mx.example.test; dmarc=pass header.from=example.test"),
                "example.test",
                true,
            ),
            (
                "dkim pass",
                h("mx.example.test; dkim=pass header.d=example.test"),
                "example.test",
                true,
            ),
            (
                "dkim of the parent domain",
                h("mx.example.test; dkim=pass header.d=example.test"),
                "eu.example.test",
                true,
            ),
            (
                "dkim by header.i",
                h("mx.example.test; dkim=pass header.i=@example.test"),
                "example.test",
                true,
            ),
            (
                "dkim of another domain",
                h("mx.example.test; dkim=pass header.d=evil.test"),
                "example.test",
                false,
            ),
            (
                "look-alike domain",
                h("mx.example.test; dkim=pass header.d=ample.test"),
                "example.test",
                false,
            ),
            (
                "dmarc fail",
                h("mx.example.test; dmarc=fail header.from=example.test"),
                "example.test",
                false,
            ),
            (
                "spf pass is not enough",
                h("mx.example.test; spf=pass smtp.mailfrom=example.test"),
                "example.test",
                false,
            ),
            (
                "someone else's verdict",
                h("mx.evil.test; dmarc=pass header.from=example.test"),
                "example.test",
                false,
            ),
            ("no headers", vec![], "example.test", false),
            (
                "a forged verdict below ours does not count",
                vec![
                    "mx.example.test; dmarc=fail header.from=example.test".into(),
                    "mx.example.test; dmarc=pass header.from=example.test".into(),
                ],
                "example.test",
                false,
            ),
            (
                "dkim of the bare TLD proves nothing",
                h("mx.example.test; dkim=pass header.d=test"),
                "example.test",
                false,
            ),
            (
                "dkim of a listed public suffix proves nothing",
                h("mx.example.test; dkim=pass header.d=co.uk"),
                "shop.co.uk",
                false,
            ),
            (
                "dkim of a sibling under a listed suffix",
                h("mx.example.test; dkim=pass header.d=other.co.uk"),
                "shop.co.uk",
                false,
            ),
            (
                "dkim of a subdomain aligns relaxed",
                h("mx.example.test; dkim=pass header.d=mail.example.test"),
                "example.test",
                true,
            ),
            (
                "header.i of the bare TLD",
                h("mx.example.test; dkim=pass header.i=@test"),
                "example.test",
                false,
            ),
            (
                "a malformed verdict of ours hides a forged one below",
                vec![
                    "mx.example.test; dkim=pass header.d=\"example.test".into(),
                    "mx.example.test; dkim=pass header.d=example.test".into(),
                ],
                "example.test",
                false,
            ),
            (
                "case-insensitive",
                h("MX.Example.Test; DMARC=Pass header.from=Example.Test"),
                "example.test",
                true,
            ),
        ];
        for (name, headers, domain, expected) in cases {
            assert_eq!(
                sender_verified(&headers, trusted, domain),
                expected,
                "{name}"
            );
        }
        assert!(
            !sender_verified(
                &h("mx.example.test; dmarc=pass header.from=example.test"),
                "",
                "example.test"
            ),
            "no trusted id configured"
        );
    }

    #[test]
    fn organizational_domains_follow_the_public_suffix_list() {
        let cases = [
            ("example.test", Some("example.test")),
            ("eu.example.test", Some("example.test")),
            ("test", None),
            ("com", None),
            ("co.uk", None),
            ("shop.co.uk", Some("shop.co.uk")),
            ("a.shop.co.uk", Some("shop.co.uk")),
            ("Example.Test.", Some("example.test")),
            ("", None),
            ("example..test", None),
        ];
        for (name, expected) in cases {
            assert_eq!(organizational_domain(name).as_deref(), expected, "{name}");
        }
    }

    /// Hostile headers from our own MTA: the attacker chooses the envelope
    /// sender and the comments; none may read as a DKIM or DMARC pass.
    #[test]
    fn quoted_strings_and_comments_never_end_a_result() {
        let trusted = "mx.example.test";
        let cases = [
            (
                "semicolon in a quoted envelope sender",
                r#"mx.example.test; spf=pass smtp.mailfrom="x;dkim=pass header.d=example.test x="@evil.test; dkim=none"#,
            ),
            (
                "dmarc inside a quoted local part",
                r#"mx.example.test; spf=pass smtp.mailfrom="a; dmarc=pass header.from=example.test"@evil.test"#,
            ),
            (
                "escaped quote keeps the string open",
                r#"mx.example.test; spf=pass smtp.mailfrom="a\"; dkim=pass header.d=example.test"@evil.test"#,
            ),
            (
                "semicolon in a comment",
                "mx.example.test; spf=pass (x; dkim=pass header.d=example.test) smtp.mailfrom=a@evil.test",
            ),
            (
                "nested comment with a quote",
                r#"mx.example.test; spf=pass (a (b ") c; dkim=pass header.d=example.test) smtp.mailfrom=a@evil.test"#,
            ),
            (
                "unterminated quoted string",
                r#"mx.example.test; dkim=pass header.d=example.test; spf=pass smtp.mailfrom="x"#,
            ),
            (
                "unterminated comment",
                "mx.example.test; dkim=pass header.d=example.test (",
            ),
            (
                "stray closing parenthesis",
                "mx.example.test; dkim=pass header.d=example.test )",
            ),
            (
                "a stray word among the properties",
                "mx.example.test; dkim=pass example.test header.d=example.test",
            ),
            (
                "the authserv-id in quotes with a semicolon",
                r#""mx.example.test; dkim=pass header.d=example.test""#,
            ),
        ];
        for (name, header) in cases {
            assert!(
                !sender_verified(&h(header), trusted, "example.test"),
                "{name}: {header}"
            );
        }
        // The same shapes, well formed, still prove what they say.
        assert!(sender_verified(
            &h(
                r#"mx.example.test; spf=pass smtp.mailfrom="x;y"@evil.test (a; b); dkim=pass header.d=example.test"#
            ),
            trusted,
            "example.test"
        ));
        assert!(sender_verified(
            &h("mx.example.test 1; dkim/1=pass reason=\"ok; fine\" header.d=example.test;"),
            trusted,
            "example.test"
        ));
    }

    #[test]
    fn deep_nesting_and_long_runs_are_read_in_one_pass() {
        // Recursion would overflow the stack here; a rescan per level would be
        // quadratic. One pass reads each in well under a second on any host.
        let n = 1 << 20;
        for value in [
            format!("mx.example.test; x=y {}", "(".repeat(n)),
            format!("mx.example.test; x=y {}{}", "(".repeat(n), ")".repeat(n)),
            format!("mx.example.test; x=y \"{}", "\\\"".repeat(n)),
            format!("mx.example.test{}", "; a=b c=d".repeat(n / 8)),
        ] {
            let parsed = parse(&value).unwrap();
            assert_eq!(parsed.authserv_id, "mx.example.test");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_header_parses_without_panic_and_within_its_size(
            value in "[a-z .;=\"()\\@/-]{0,200}"
        ) {
            if let Some(parsed) = parse(&value) {
                let size: usize = parsed.authserv_id.len()
                    + parsed.results.iter().flatten().map(|r| {
                        r.method.len() + r.result.len()
                            + r.properties.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                    }).sum::<usize>();
                proptest::prop_assert!(size <= value.len());
            }
            let _ = sender_verified(&[value], "mx.example.test", "example.test");
        }
    }
}
