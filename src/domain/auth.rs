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

/// Removes RFC 5322 comments `( … )`, which may nest.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted) = (0usize, false);
    for c in value.chars() {
        match c {
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Parses one header value: the authserv-id and its results (RFC 8601 §2.2).
pub fn parse(value: &str) -> Option<(String, Vec<AuthResult>)> {
    let cleaned = strip_comments(value);
    let mut parts = cleaned.split(';');
    let authserv_id = parts
        .next()?
        .split_whitespace()
        .next()?
        .to_ascii_lowercase();
    let mut results = Vec::new();
    for part in parts {
        let mut words = part.split_whitespace();
        let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
            continue;
        };
        let properties = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.trim_matches('"').to_ascii_lowercase(),
                )
            })
            .collect();
        results.push(AuthResult {
            method: method.to_ascii_lowercase(),
            result: result.to_ascii_lowercase(),
            properties,
        });
    }
    Some((authserv_id, results))
}

fn aligned(signer: &str, sender_domain: &str) -> bool {
    let signer = signer.trim_start_matches('@');
    let signer = signer.rsplit_once('@').map_or(signer, |(_, d)| d);
    sender_domain == signer || sender_domain.ends_with(&format!(".{signer}"))
}

/// Whether our MTA vouched for `sender_domain`: DMARC passed for it, or a DKIM
/// signature of it (or of a parent domain) verified. Only the topmost header
/// with the trusted authserv-id counts: our MTA adds its verdict on top and
/// strips look-alikes (RFC 8601 §5); anything below came with the message.
pub fn sender_verified(headers: &[String], trusted_authserv_id: &str, sender_domain: &str) -> bool {
    let trusted = trusted_authserv_id.trim().to_ascii_lowercase();
    if trusted.is_empty() {
        return false;
    }
    let domain = sender_domain.to_ascii_lowercase();
    let Some((_, results)) = headers
        .iter()
        .filter_map(|h| parse(h))
        .find(|(id, _)| *id == trusted)
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
        let (id, results) =
            parse("mx.example.test (Postfix 3.7); dkim=pass (2048-bit key) header.d=customer.test header.s=s1; spf=fail smtp.mailfrom=x@y")
                .unwrap();
        assert_eq!(id, "mx.example.test");
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].method, "dkim");
        assert_eq!(results[0].property("header.d"), Some("customer.test"));
        assert_eq!(results[1].result, "fail");
        assert_eq!(parse("mx.example.test; none").unwrap().1, vec![]);
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
}
