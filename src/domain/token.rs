//! Signed reply addresses: `<local>+<ticket>.<user>.<mac>@<domain>`.
//!
//! The mac binds a ticket to one recipient so that a reply to the address threads
//! even when a client strips In-Reply-To/References, and so that the gateway knows
//! which participant the address was issued to. It is the first 80 bits of
//! HMAC-SHA256(secret, "<ticket>.<user>") in lowercase RFC 4648 §6 base32: 16
//! characters, keeping the local part well under RFC 5321 §4.5.3.1.1's 64 octets.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::ids::{EmailAddress, TicketId, UserId};

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const MAC_BYTES: usize = 10;
const MAC_CHARS: usize = 16;

/// A verified token: the address was issued by this gateway for this pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyToken {
    pub ticket: TicketId,
    pub user: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a reply address of this gateway")]
    NotOurs,
    #[error("malformed reply token")]
    Malformed,
    #[error("reply token signature does not match")]
    BadSignature,
}

fn hmac(secret: &[u8], ticket: TicketId, user: UserId) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(format!("{ticket}.{user}").as_bytes());
    mac
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The 16-character mac for a ticket and recipient.
pub fn mac(secret: &[u8], ticket: TicketId, user: UserId) -> String {
    let tag = hmac(secret, ticket, user).finalize().into_bytes();
    base32(&tag[..MAC_BYTES])
}

/// The Reply-To address for `user` on `ticket`, under the support address.
pub fn reply_address(
    support: &EmailAddress,
    secret: &[u8],
    ticket: TicketId,
    user: UserId,
) -> String {
    format!(
        "{}+{ticket}.{user}.{}@{}",
        support.local_part(),
        mac(secret, ticket, user),
        support.domain()
    )
}

/// Verifies `candidate` as a reply address issued under `support`.
///
/// The comparison of the mac is constant-time and case-insensitive (some MTAs
/// and clients uppercase addresses).
pub fn verify(
    support: &EmailAddress,
    secret: &[u8],
    candidate: &EmailAddress,
) -> Result<ReplyToken, TokenError> {
    if candidate.domain() != support.domain() {
        return Err(TokenError::NotOurs);
    }
    let (local, detail) = candidate
        .local_part()
        .split_once('+')
        .ok_or(TokenError::NotOurs)?;
    if local != support.local_part() {
        return Err(TokenError::NotOurs);
    }
    let mut fields = detail.split('.');
    let (Some(ticket), Some(user), Some(tag), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(TokenError::Malformed);
    };
    let ticket: TicketId = ticket.parse().map_err(|_| TokenError::Malformed)?;
    let user: UserId = user.parse().map_err(|_| TokenError::Malformed)?;
    if tag.len() != MAC_CHARS || ticket <= 0 || user <= 0 {
        return Err(TokenError::Malformed);
    }
    let bytes = unbase32(tag).ok_or(TokenError::Malformed)?;
    hmac(secret, ticket, user)
        .verify_truncated_left(&bytes)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(ReplyToken { ticket, user })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support() -> EmailAddress {
        EmailAddress::parse("support@example.test").unwrap()
    }

    #[test]
    fn base32_matches_rfc4648_test_vectors() {
        // RFC 4648 §10, lowercased, without padding.
        for (input, expected) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected);
        }
        assert_eq!(unbase32("mzxw6ytb").unwrap(), b"fooba");
    }

    #[test]
    fn issued_addresses_verify_to_their_ticket_and_user() {
        let addr = reply_address(&support(), b"s3cret", 42, 7);
        assert!(addr.starts_with("support+42.7."));
        let parsed = EmailAddress::parse(&addr).unwrap();
        assert!(parsed.local_part().len() <= 64);
        assert_eq!(
            verify(&support(), b"s3cret", &parsed),
            Ok(ReplyToken {
                ticket: 42,
                user: 7
            })
        );
    }

    #[test]
    fn the_mac_is_compared_case_insensitively() {
        let addr = reply_address(&support(), b"k", 1, 1).to_uppercase();
        // EmailAddress lowercases, so build the uppercase form by hand as an MTA would pass it.
        let parsed = EmailAddress::parse(&addr).unwrap();
        assert!(verify(&support(), b"k", &parsed).is_ok());
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let s = support();
        let good = reply_address(&s, b"k", 5, 9);
        let cases = [
            (good.replace("+5.9.", "+6.9."), TokenError::BadSignature),
            (good.replace("+5.9.", "+5.8."), TokenError::BadSignature),
            (
                "support+5.9.aaaaaaaaaaaaaaaa@example.test".to_string(),
                TokenError::BadSignature,
            ),
            (
                "support+5.9.short@example.test".to_string(),
                TokenError::Malformed,
            ),
            (
                "support+5.9@example.test".to_string(),
                TokenError::Malformed,
            ),
            (
                "support+x.9.aaaaaaaaaaaaaaaa@example.test".to_string(),
                TokenError::Malformed,
            ),
            ("support@example.test".to_string(), TokenError::NotOurs),
            (
                good.replace("@example.test", "@other.test"),
                TokenError::NotOurs,
            ),
            (good.replace("support+", "sales+"), TokenError::NotOurs),
        ];
        for (addr, expected) in cases {
            let parsed = EmailAddress::parse(&addr).unwrap();
            assert_eq!(verify(&s, b"k", &parsed), Err(expected), "{addr}");
        }
        // A different secret never verifies.
        assert_eq!(
            verify(&s, b"other", &EmailAddress::parse(&good).unwrap()),
            Err(TokenError::BadSignature)
        );
    }
}
