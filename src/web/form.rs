//! Reading a posted form, `application/x-www-form-urlencoded` or
//! `multipart/form-data`, with the session's CSRF token checked first: a
//! multipart form must open with its `csrf` field, so a forged request is
//! refused before any attachment is read.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use super::WebError;

/// A file sent with a form.
#[derive(Debug)]
pub struct Upload {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A posted form's fields, in order, and its files.
#[derive(Debug, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
    pub files: Vec<Upload>,
}

impl Form {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` as written (a comment keeps its spacing).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| matches!(v, "on" | "1" | "true" | "yes"))
    }
}

/// Compares without stopping at the first difference, so response times
/// tell nothing about how much of a guess was right.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What one posted form may hold besides its size (`[web] max_fields`,
/// `max_files`): a form's cost grows with its parts, not only its bytes
/// (a million empty fields are a few megabytes on the wire and many times
/// that in memory), so both are counted while the body is read and the
/// request is refused (413) at the first part too many.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fields: usize,
    pub files: usize,
}

/// All of a form's text (every value that is not a file) together: a
/// comment longer than this belongs in an attached file. The admin API's
/// JSON bodies have the same bound (`api::BODY_LIMIT`).
pub const TEXT_LIMIT: usize = 1024 * 1024;

/// Reads the form of `req`, at most `limit` bytes and `limits` parts;
/// `csrf`: the session's token, which the form's `csrf` field must equal
/// (403 otherwise; `None` for the sign-in form, which has no session yet).
/// Every bound is checked as the bytes arrive, before they are kept.
pub async fn read(
    req: Request,
    csrf: Option<&str>,
    limit: usize,
    limits: Limits,
) -> Result<Form, WebError> {
    read_form(req, csrf, limit, limits, false)
        .await
        .map(|(form, _)| form)
}

/// [`read`], but a form whose token is out of date (the person signed in
/// again in another tab) is read on, its files left unread, and returned
/// as `Err(form)` so the page can show it again with a fresh token and
/// nothing typed is lost. Only for pages whose posts passed the same-origin
/// check (`web::same_origin_posts`): the text goes back to the page it came from.
pub async fn read_keeping_stale(
    req: Request,
    csrf: &str,
    limit: usize,
    limits: Limits,
) -> Result<Result<Form, Form>, WebError> {
    let (form, stale) = read_form(req, Some(csrf), limit, limits, true).await?;
    Ok(if stale { Err(form) } else { Ok(form) })
}

/// `read`; with `keep_stale`, a wrong token reads on (text only) and says so.
async fn read_form(
    req: Request,
    csrf: Option<&str>,
    limit: usize,
    limits: Limits,
    keep_stale: bool,
) -> Result<(Form, bool), WebError> {
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    // A declared length over the limit is refused before a byte is read
    // (RFC 9110 §8.6, §15.5.14).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if kind.starts_with("application/x-www-form-urlencoded") {
        let limit = limit.min(TEXT_LIMIT);
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(WebError::TooLarge);
        }
        let bytes = read_urlencoded(req.into_body(), limit, limits.fields).await?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::BadRequest(format!("form: {e}")))?;
        let form = Form {
            fields,
            files: Vec::new(),
        };
        let stale = csrf.is_some_and(|expected| {
            !form
                .raw("csrf")
                .is_some_and(|got| same_token(got, expected))
        });
        if stale && !keep_stale {
            return Err(WebError::Forbidden);
        }
        return Ok((form, stale));
    }
    if kind.starts_with("multipart/form-data") {
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(WebError::TooLarge);
        }
        let multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| WebError::BadRequest(e.body_text()))?;
        return read_multipart(multipart, csrf, limit, limits, keep_stale).await;
    }
    if csrf.is_some() {
        // No form at all carries no token.
        return Err(WebError::Forbidden);
    }
    Err(WebError::Unsupported)
}

/// The body of a url-encoded form, refused as soon as it passes `limit`
/// bytes or holds more than `fields` fields (counted by their `&`
/// separators, so a run of empty fields counts too).
async fn read_urlencoded(
    body: axum::body::Body,
    limit: usize,
    fields: usize,
) -> Result<Vec<u8>, WebError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut separators = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        if bytes.len() + chunk.len() > limit {
            return Err(WebError::TooLarge);
        }
        separators += memchr::memchr_iter(b'&', &chunk).count();
        if separators >= fields {
            return Err(WebError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The parts of a multipart form (RFC 7578), each read chunk by chunk: a
/// part too many, a file too many, text over `TEXT_LIMIT` or content over
/// `limit` ends the request before the part is kept.
async fn read_multipart(
    mut multipart: Multipart,
    csrf: Option<&str>,
    limit: usize,
    limits: Limits,
    keep_stale: bool,
) -> Result<(Form, bool), WebError> {
    let mut form = Form::default();
    let mut stale = false;
    let (mut parts, mut text, mut total) = (0usize, 0usize, 0usize);
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        parts += 1;
        if parts > limits.fields {
            return Err(WebError::TooLarge);
        }
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        // A file input left empty still sends a part, named "": no file.
        let is_file = filename.as_deref().is_some_and(|f| !f.is_empty());
        if is_file && form.files.len() >= limits.files {
            return Err(WebError::TooLarge);
        }
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            total += chunk.len();
            if total > limit {
                return Err(WebError::TooLarge);
            }
            if filename.is_none() {
                text += chunk.len();
                if text > TEXT_LIMIT {
                    return Err(WebError::TooLarge);
                }
            }
            // A stale form's files are not kept: only its text is shown again.
            if filename.is_none() || (is_file && !stale) {
                data.extend_from_slice(&chunk);
            }
        }
        if parts == 1
            && let Some(expected) = csrf
        {
            // The token comes first, so a forged upload is refused before
            // any file is read.
            let ok = name == "csrf"
                && filename.is_none()
                && std::str::from_utf8(&data).is_ok_and(|got| same_token(got, expected));
            if !ok && !keep_stale {
                return Err(WebError::Forbidden);
            }
            stale = !ok;
        }
        match filename {
            Some(_) if is_file && stale => {}
            Some(filename) if is_file => form.files.push(Upload {
                filename,
                content_type,
                data,
            }),
            Some(_) => {}
            None => {
                let value = String::from_utf8(data)
                    .map_err(|_| WebError::BadRequest(format!("field {name:?} is not UTF-8")))?;
                form.fields.push((name, value));
            }
        }
    }
    if parts == 0 && csrf.is_some() {
        return Err(WebError::Forbidden);
    }
    Ok((form, stale))
}

/// A body that stopped arriving (`idle_timeout`) is 408; anything else
/// that broke it, 400.
fn body_error(e: &(dyn std::error::Error + 'static)) -> WebError {
    if crate::listen::is_body_timeout(e) {
        WebError::Timeout
    } else {
        WebError::BadRequest(format!("reading the form: {e}"))
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> WebError {
    if crate::listen::is_body_timeout(&e) {
        WebError::Timeout
    } else if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        WebError::TooLarge
    } else {
        WebError::BadRequest(e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
    }
}
