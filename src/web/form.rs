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

/// Reads the form of `req`, at most `limit` bytes; `csrf`: the session's
/// token, which the form's `csrf` field must equal (403 otherwise; `None`
/// for the sign-in form, which has no session yet).
pub async fn read(req: Request, csrf: Option<&str>, limit: usize) -> Result<Form, WebError> {
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind.starts_with("application/x-www-form-urlencoded") {
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| WebError::TooLarge)?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::BadRequest(format!("form: {e}")))?;
        let form = Form {
            fields,
            files: Vec::new(),
        };
        if let Some(expected) = csrf
            && !form
                .raw("csrf")
                .is_some_and(|got| same_token(got, expected))
        {
            return Err(WebError::Forbidden);
        }
        return Ok(form);
    }
    if kind.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| WebError::BadRequest(e.body_text()))?;
        let mut form = Form::default();
        let mut first = true;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            if first {
                first = false;
                if let Some(expected) = csrf {
                    let ok = name == "csrf"
                        && field.file_name().is_none()
                        && field
                            .text()
                            .await
                            .map_err(multipart_error)?
                            .as_str()
                            .eq(expected);
                    if !ok {
                        return Err(WebError::Forbidden);
                    }
                    form.fields.push((name, expected.to_string()));
                    continue;
                }
            }
            match field.file_name().map(str::to_string) {
                // A file input left empty still sends a part without a name.
                Some(filename) if !filename.is_empty() => {
                    let content_type = field
                        .content_type()
                        .unwrap_or("application/octet-stream")
                        .to_string();
                    let data = field.bytes().await.map_err(multipart_error)?.to_vec();
                    form.files.push(Upload {
                        filename,
                        content_type,
                        data,
                    });
                }
                Some(_) => {}
                None => {
                    let value = field.text().await.map_err(multipart_error)?;
                    form.fields.push((name, value));
                }
            }
        }
        if first && csrf.is_some() {
            return Err(WebError::Forbidden);
        }
        return Ok(form);
    }
    if csrf.is_some() {
        // No form at all carries no token.
        return Err(WebError::Forbidden);
    }
    Err(WebError::Unsupported)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> WebError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
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
