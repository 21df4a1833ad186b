//! Text a reader of an HTML mail does not see. Commands and @mentions are
//! read from the text of a message, so `#close` inside `display:none`, a
//! `hidden` element or white-on-white text would act on a ticket while the
//! mail, as anyone opens it, shows nothing of the kind. [`visible_html`]
//! drops what a mail client would not show before the HTML becomes text:
//!
//! - elements with the `hidden` attribute or `aria-hidden="true"`, and
//!   `<template>` (HTML §4.12.3: never rendered);
//! - CSS (inline `style`, and `<style>` rules whose selector is a tag, a
//!   class or an id): `display:none`, `visibility:hidden|collapse` (unless a
//!   descendant sets `visible`, CSS 2.1 §11.2), `opacity:0`, a font size
//!   under 2px (also the `font:0/0 a` shorthand), a zero `height`, `width`
//!   or `max-height` with `overflow:hidden`, Outlook's `mso-hide:all`;
//! - text whose colour (`color`, `<font color>`, `<body text>`) is the
//!   background's (`background[-color]`, `bgcolor`; white where none is
//!   set, as mail clients show it) or close to it, or `transparent`.
//!
//! Values are read as a browser reads them: character references in
//! attributes decoded, CSS comments and escapes undone, any case. Rules in
//! `@media` blocks are not applied: what they hide shows at other sizes.
//!
//! One pass over the tags, linear in the input: an open element is one stack
//! entry (at most `MAX_HTML_DEPTH`; an element deeper than that which would
//! hide something hides the rest of the document, which no real mail nests
//! so deep to need), an end tag pops to its element only when one of that
//! name is open (a per-name count, so a stray `</b>` costs nothing and never
//! ends a hidden element early), and never across a table cell (HTML
//! §13.2.4.2 "has an element in scope").

use std::borrow::Cow;
use std::collections::HashMap;

use super::MAX_HTML_DEPTH;

/// A colour as far as "is the text the colour of its background" goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Color {
    Rgb(u8, u8, u8),
    Transparent,
    /// A value not read (`hsl(…)`, an unlisted name): equal only to itself.
    Other(u64),
}

impl Color {
    /// Whether text in `self` on `background` cannot be read: the same
    /// colour or one within a few steps per channel (`#fefefe` on white).
    fn unreadable_on(self, background: Color) -> bool {
        match (self, background) {
            (Color::Transparent, _) => true,
            (Color::Rgb(r, g, b), Color::Rgb(x, y, z)) => {
                r.abs_diff(x) <= 24 && g.abs_diff(y) <= 24 && b.abs_diff(z) <= 24
            }
            (a, b) => a == b,
        }
    }
}

const WHITE: Color = Color::Rgb(255, 255, 255);
const BLACK: Color = Color::Rgb(0, 0, 0);

/// What an element's attributes and styles say about showing it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Delta {
    /// Hides the element and everything in it, whatever descendants say.
    gone: bool,
    /// `visibility`: `Some(false)` hidden, `Some(true)` visible again.
    visible: Option<bool>,
    /// `font-size`: `Some(false)` too small to read.
    readable: Option<bool>,
    color: Option<Color>,
    background: Option<Color>,
    zero_size: bool,
    overflow_hidden: bool,
}

impl Delta {
    /// `other` applied after `self` (a later rule, or the inline style).
    fn then(self, other: Delta) -> Delta {
        Delta {
            gone: self.gone || other.gone,
            visible: other.visible.or(self.visible),
            readable: other.readable.or(self.readable),
            color: other.color.or(self.color),
            background: other.background.or(self.background),
            zero_size: self.zero_size || other.zero_size,
            overflow_hidden: self.overflow_hidden || other.overflow_hidden,
        }
    }

    /// Only what hides (for selectors matched loosely: they may hide more
    /// than a browser would, never show more).
    fn hiding_part(self) -> Delta {
        Delta {
            gone: self.gone || (self.zero_size && self.overflow_hidden),
            visible: self.visible.filter(|v| !v),
            readable: self.readable.filter(|r| !r),
            zero_size: self.zero_size,
            overflow_hidden: self.overflow_hidden,
            ..Delta::default()
        }
    }
}

/// The state of an open element, inherited by what is in it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    name: u64,
    /// An end tag of another name stops here (`SCOPE`).
    scope: bool,
    gone: bool,
    visibility_hidden: bool,
    too_small: bool,
    color: Color,
    background: Color,
}

impl Frame {
    fn shown(&self) -> bool {
        !self.gone
            && !self.visibility_hidden
            && !self.too_small
            && !self.color.unreadable_on(self.background)
    }

    fn child(&self, name: u64, d: Delta) -> Frame {
        Frame {
            name,
            scope: false,
            gone: self.gone || d.gone || (d.zero_size && d.overflow_hidden),
            visibility_hidden: d.visible.map_or(self.visibility_hidden, |v| !v),
            too_small: d.readable.map_or(self.too_small, |r| !r),
            color: d.color.unwrap_or(self.color),
            background: match d.background {
                Some(Color::Transparent) | None => self.background,
                // `background: currentcolor` is the text's own colour.
                Some(c) if c == Color::Other(name_hash(b"currentcolor")) => {
                    d.color.unwrap_or(self.color)
                }
                Some(c) => c,
            },
        }
    }
}

/// FNV-1a of a name, lowercased: tags compare without allocating.
fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Elements with no content (HTML §13.1.2).
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen", "basefont", "bgsound", "frame",
];

/// Elements whose text is not markup; their end tag alone ends them.
const RAW: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "noembed", "noframes", "iframe",
];

/// Elements an end tag of another name does not reach past.
const SCOPE: &[&str] = &[
    "td", "th", "caption", "table", "template", "object", "applet", "marquee", "html",
];

/// Elements a second one of the same name implicitly ends (HTML §13.1.2.4).
const OPTIONAL_END: &[&str] = &["p", "li", "dt", "dd", "tr", "td", "th", "option"];

fn is(list: &[&str], name: &[u8]) -> bool {
    list.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The HTML a reader sees: `html` without the elements and text a mail
/// client would not show (see the module comment). Borrowed when nothing is
/// hidden.
pub fn visible_html(html: &str) -> Cow<'_, str> {
    let bytes = html.as_bytes();
    let sheet = StyleSheet::of(html);
    let root = Frame {
        name: 0,
        scope: true,
        gone: false,
        visibility_hidden: false,
        too_small: false,
        color: BLACK,
        background: WHITE,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    // Elements opened past MAX_HTML_DEPTH, not tracked.
    let mut overflow = 0usize;
    // The last end tag found out of scope, and the stack it was looked up
    // in (`generation` counts pushes and pops): the same one again costs nothing.
    let mut generation = 0u64;
    let mut refused = (0u64, u64::MAX);
    let mut out: Option<String> = None;
    let mut copied = 0usize;
    let mut shown = true;
    let mut i = 0usize;
    // Moves `shown` to `now` at a tag spanning `at..end`.
    let switch = |out: &mut Option<String>,
                  copied: &mut usize,
                  shown: &mut bool,
                  now: bool,
                  at: usize,
                  end: usize,
                  opening: bool| {
        if *shown == now {
            return;
        }
        if now {
            *copied = if opening { at } else { end };
        } else {
            let keep = if opening { at } else { end };
            out.get_or_insert_with(|| String::with_capacity(html.len()))
                .push_str(&html[*copied..keep]);
        }
        *shown = now;
    };
    while let Some(at) = memchr::memchr(b'<', &bytes[i..]).map(|p| i + p) {
        let rest = &bytes[at..];
        if rest.starts_with(b"<!--") {
            // A comment ends at `-->` (HTML §13.2.5.43).
            i = memchr::memmem::find(&bytes[at + 4..], b"-->")
                .map_or(bytes.len(), |e| at + 4 + e + 3);
            continue;
        }
        let closing = rest.get(1) == Some(&b'/');
        let name_start = at + 1 + usize::from(closing);
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // `<!doctype>`, `<?xml?>`, `</ x>`: bogus comments up to `>`
            // (§13.2.5.6, .7); `<` before anything else is text.
            i = if closing || matches!(rest.get(1), Some(b'!' | b'?')) {
                memchr::memchr(b'>', &bytes[at..]).map_or(bytes.len(), |e| at + e + 1)
            } else {
                at + 1
            };
            continue;
        }
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
            .map_or(bytes.len(), |n| name_start + n);
        let name = &bytes[name_start..name_end];
        let (attrs, tag_end) = attributes(html, name_end);
        let Some(tag_end) = tag_end else {
            // An unfinished tag at the end is dropped (HTML §13.2.5.8 EOF).
            switch(&mut out, &mut copied, &mut shown, false, at, at, true);
            break;
        };
        let hash = name_hash(name);
        if closing {
            i = tag_end;
            if overflow > 0 {
                overflow -= 1;
                continue;
            }
            if open.get(&hash).copied().unwrap_or(0) == 0 || refused == (hash, generation) {
                continue;
            }
            let in_scope = stack
                .iter()
                .rposition(|f| f.name == hash || f.scope)
                .filter(|&j| stack[j].name == hash);
            if in_scope.is_none() {
                refused = (hash, generation);
            }
            if let Some(j) = in_scope {
                generation += 1;
                for f in stack.drain(j..) {
                    if let Some(n) = open.get_mut(&f.name) {
                        *n -= 1;
                    }
                }
                let now = stack.last().unwrap_or(&root).shown();
                switch(&mut out, &mut copied, &mut shown, now, at, tag_end, false);
            }
            continue;
        }
        i = tag_end;
        if is(RAW, name) {
            // Its text is no markup: up to its end tag.
            let end_tag = [b"</", name].concat();
            i = find_ignore_case(bytes, tag_end, &end_tag).unwrap_or(bytes.len());
            if !name.eq_ignore_ascii_case(b"textarea") && !name.eq_ignore_ascii_case(b"title") {
                continue;
            }
        }
        if is(VOID, name) {
            continue;
        }
        if is(OPTIONAL_END, name) && stack.last().is_some_and(|f| f.name == hash) {
            generation += 1;
            if let Some(f) = stack.pop()
                && let Some(n) = open.get_mut(&f.name)
            {
                *n -= 1;
            }
        }
        let mut delta = sheet.delta(name, &attrs);
        if name.eq_ignore_ascii_case(b"template") {
            delta.gone = true;
        }
        let parent = *stack.last().unwrap_or(&root);
        let mut frame = parent.child(hash, delta);
        frame.scope = is(SCOPE, name);
        if overflow > 0 || stack.len() >= MAX_HTML_DEPTH {
            overflow += 1;
            if !frame.shown() {
                // Too deep to follow where it ends: nothing after it is read.
                switch(&mut out, &mut copied, &mut shown, false, at, tag_end, true);
                copied = bytes.len();
                break;
            }
            continue;
        }
        generation += 1;
        stack.push(frame);
        *open.entry(hash).or_insert(0) += 1;
        switch(
            &mut out,
            &mut copied,
            &mut shown,
            frame.shown(),
            at,
            tag_end,
            true,
        );
    }
    match out {
        // Nothing was hidden (`switch` copies when something is).
        None => Cow::Borrowed(html),
        Some(mut out) => {
            if shown {
                out.push_str(&html[copied..]);
            }
            Cow::Owned(out)
        }
    }
}

fn find_ignore_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = needle.first()?;
    let mut i = from;
    while let Some(p) = memchr::memchr(*first, bytes.get(i..)?) {
        let at = i + p;
        if bytes
            .get(at..at + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// The attributes that matter here, as a browser reads them.
#[derive(Debug, Default)]
struct Attrs {
    style: Option<String>,
    class: Option<String>,
    id: Option<String>,
    color: Option<String>,
    bgcolor: Option<String>,
    text: Option<String>,
    hidden: bool,
    aria_hidden: bool,
}

/// Reads the attributes of a start tag from `from` (after its name) to its
/// `>`, which a quoted value may hold (HTML §13.2.5.32-38). Returns the
/// attributes and the index after the `>`, or `None` at the end of input.
fn attributes(html: &str, from: usize) -> (Attrs, Option<usize>) {
    let bytes = html.as_bytes();
    let mut attrs = Attrs::default();
    let mut i = from;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return (attrs, None),
            Some(b'>') => return (attrs, Some(i + 1)),
            _ => {}
        }
        let name_start = i;
        // The first character may be `=` (HTML §13.2.5.32).
        i += 1;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let name = &html[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value: Option<&str> = None;
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let Some(end) = memchr::memchr(q, &bytes[i + 1..]) else {
                        return (attrs, None);
                    };
                    value = Some(&html[i + 1..i + 1 + end]);
                    i += end + 2;
                }
                Some(_) => {
                    let start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = Some(&html[start..i]);
                }
                None => return (attrs, None),
            }
        }
        let decoded = || value.map(decode_references);
        // The first of a name counts (HTML §13.2.5.33: later ones are dropped).
        let slot = match name.len() {
            2..=11 => [
                ("style", &mut attrs.style),
                ("class", &mut attrs.class),
                ("id", &mut attrs.id),
                ("color", &mut attrs.color),
                ("bgcolor", &mut attrs.bgcolor),
                ("text", &mut attrs.text),
            ]
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, slot)| slot),
            _ => None,
        };
        match slot {
            Some(slot) if slot.is_none() => *slot = decoded(),
            Some(_) => {}
            None if name.eq_ignore_ascii_case("hidden") => attrs.hidden = true,
            None if name.eq_ignore_ascii_case("aria-hidden") => {
                attrs.aria_hidden |=
                    decoded().is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            }
            None => {}
        }
    }
}

/// Character references in an attribute value (HTML §13.2.5.72): numeric
/// ones, and the named ones that spell CSS (`&colon;`, `&semi;`…).
fn decode_references(value: &str) -> String {
    if !value.contains('&') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp + 1..];
        if let Some(num) = rest.strip_prefix('#') {
            let (hex, digits) = match num.strip_prefix(['x', 'X']) {
                Some(h) => (true, h),
                None => (false, num),
            };
            let len = digits
                .bytes()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            let code = u32::from_str_radix(&digits[..len.min(8)], if hex { 16 } else { 10 });
            if len > 0
                && let Ok(code) = code
            {
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                rest = &digits[len..];
                rest = rest.strip_prefix(';').unwrap_or(rest);
                continue;
            }
            out.push('&');
            continue;
        }
        const NAMED: &[(&str, char)] = &[
            ("colon;", ':'),
            ("semi;", ';'),
            ("amp;", '&'),
            ("quot;", '"'),
            ("apos;", '\''),
            ("lt;", '<'),
            ("gt;", '>'),
            ("num;", '#'),
            ("period;", '.'),
            ("comma;", ','),
            ("lpar;", '('),
            ("rpar;", ')'),
            ("sol;", '/'),
            ("bsol;", '\\'),
            ("excl;", '!'),
            ("percnt;", '%'),
            ("nbsp;", ' '),
            ("tab;", '\t'),
            ("newline;", '\n'),
            ("hyphen;", '-'),
            ("dash;", '-'),
        ];
        match NAMED.iter().find(|(n, _)| {
            rest.get(..n.len())
                .is_some_and(|r| r.eq_ignore_ascii_case(n))
        }) {
            Some((n, c)) => {
                out.push(*c);
                rest = &rest[n.len()..];
            }
            None => out.push('&'),
        }
    }
    out.push_str(rest);
    out
}

/// CSS text as the browser reads it (CSS Syntax §4.3.7): comments out,
/// escapes (`\6c`, `\:`) undone, lowercased.
fn css_text(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            '\\' => {
                let mut hex = String::new();
                while hex.len() < 6 && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    hex.extend(chars.next());
                }
                if hex.is_empty() {
                    match chars.next() {
                        Some('\n') | None => {}
                        Some(c) => out.extend(c.to_lowercase()),
                    }
                } else {
                    if chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                        chars.next();
                    }
                    let c = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or('\u{FFFD}');
                    out.extend(c.to_lowercase());
                }
            }
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The declarations of a style (`css_text` already applied): the normal
/// ones and the `!important` ones, which win over any normal one (CSS
/// Cascade §6.4: a sheet's `!important` beats an inline style).
fn declarations(css: &str) -> [Delta; 2] {
    let mut both = [Delta::default(); 2];
    for decl in css.split(';') {
        let Some((property, value)) = decl.split_once(':') else {
            continue;
        };
        let property = property.trim();
        let value = value.trim();
        let important = value
            .strip_suffix("important")
            .map(str::trim_end)
            .and_then(|v| v.strip_suffix('!'));
        let d = &mut both[usize::from(important.is_some())];
        let value = important.unwrap_or(value).trim();
        match property {
            "display" => d.gone |= value == "none",
            "visibility" => {
                d.visible = match value {
                    "hidden" | "collapse" => Some(false),
                    "visible" => Some(true),
                    _ => d.visible,
                }
            }
            "opacity" => {
                d.gone |= number(value).is_some_and(
                    |(n, unit)| {
                        if unit == "%" { n < 5.0 } else { n < 0.05 }
                    },
                )
            }
            "font-size" => d.readable = font_size_readable(value).or(d.readable),
            "font" => {
                // `font: 0/0 a`: the size is the first token that starts with a digit.
                let size = value
                    .split_ascii_whitespace()
                    .find(|t| t.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
                    .map(|t| t.split('/').next().unwrap_or(t));
                if let Some(size) = size {
                    d.readable = font_size_readable(size).or(d.readable);
                }
            }
            "color" => d.color = color(value).or(d.color),
            "background-color" => d.background = color(value).or(d.background),
            "background" => {
                d.background = color(value)
                    .or_else(|| {
                        css_tokens(value)
                            .into_iter()
                            .filter(|t| !BACKGROUND_WORDS.contains(t))
                            .find_map(color)
                    })
                    .or(d.background)
            }
            "height" | "max-height" | "width" | "max-width" => {
                d.zero_size |= number(value).is_some_and(|(n, _)| n == 0.0)
            }
            "overflow" | "overflow-x" | "overflow-y" => {
                d.overflow_hidden |= matches!(value, "hidden" | "clip")
            }
            "mso-hide" => d.gone |= value == "all",
            _ => {}
        }
    }
    both
}

/// Words of the `background` shorthand that are not colours.
const BACKGROUND_WORDS: &[&str] = &[
    "repeat",
    "no-repeat",
    "repeat-x",
    "repeat-y",
    "space",
    "round",
    "scroll",
    "fixed",
    "local",
    "top",
    "bottom",
    "left",
    "right",
    "center",
    "cover",
    "contain",
    "auto",
    "border-box",
    "padding-box",
    "content-box",
    "text",
    "none",
];

/// The space-separated tokens of a CSS value, a parenthesized group being
/// one (`rgb(0, 0, 0)`).
fn css_tokens(value: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (i, c) in value.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if c.is_ascii_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    tokens.push(&value[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        tokens.push(&value[s..]);
    }
    tokens
}

/// A CSS number and its unit (`0.5em` → (0.5, "em")).
fn number(value: &str) -> Option<(f64, &str)> {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(value.len());
    let n: f64 = value[..end].parse().ok()?;
    Some((n, value[end..].trim()))
}

/// Whether a `font-size` can be read: under 2px (or 2pt, 0.1em, 10%) cannot.
fn font_size_readable(value: &str) -> Option<bool> {
    let (n, unit) = number(value)?;
    Some(match unit {
        "" => n > 0.0,
        "px" | "pt" | "pc" | "q" | "mm" => n >= 2.0,
        "%" => n >= 10.0,
        _ => n >= 0.1,
    })
}

/// A CSS or HTML colour value.
fn color(value: &str) -> Option<Color> {
    let v = value
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_ascii_lowercase();
    if v.is_empty()
        || matches!(
            v.as_str(),
            "inherit" | "initial" | "unset" | "revert" | "none"
        )
    {
        return None;
    }
    if v == "transparent" {
        return Some(Color::Transparent);
    }
    if let Some(hex) = v.strip_prefix('#').or_else(|| {
        // HTML `bgcolor=ffffff` without `#`.
        (v.len() == 6 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v.as_str())
    }) {
        let digit = |i: usize| u8::from_str_radix(hex.get(i..i + 1)?, 16).ok();
        let pair = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        let rgba = match hex.len() {
            3 | 4 => (
                digit(0)? * 17,
                digit(1)? * 17,
                digit(2)? * 17,
                if hex.len() == 4 { digit(3)? * 17 } else { 255 },
            ),
            6 | 8 => (
                pair(0)?,
                pair(2)?,
                pair(4)?,
                if hex.len() == 8 { pair(6)? } else { 255 },
            ),
            _ => return Some(Color::Other(name_hash(v.as_bytes()))),
        };
        return Some(if rgba.3 < 13 {
            Color::Transparent
        } else {
            Color::Rgb(rgba.0, rgba.1, rgba.2)
        });
    }
    if let Some(args) = v
        .strip_prefix("rgba(")
        .or_else(|| v.strip_prefix("rgb("))
        .and_then(|a| a.strip_suffix(')'))
    {
        let parts: Vec<&str> = args
            .split(|c: char| c == ',' || c == '/' || c.is_ascii_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let channel = |p: &str| -> Option<u8> {
            let (n, unit) = number(p)?;
            let n = if unit == "%" { n * 2.55 } else { n };
            Some(n.clamp(0.0, 255.0).round() as u8)
        };
        if parts.len() >= 3 {
            let alpha = parts
                .get(3)
                .and_then(|a| number(a))
                .map_or(1.0, |(n, u)| if u == "%" { n / 100.0 } else { n });
            if alpha < 0.05 {
                return Some(Color::Transparent);
            }
            if let (Some(r), Some(g), Some(b)) =
                (channel(parts[0]), channel(parts[1]), channel(parts[2]))
            {
                return Some(Color::Rgb(r, g, b));
            }
        }
        return Some(Color::Other(name_hash(v.as_bytes())));
    }
    const NAMED: &[(&str, (u8, u8, u8))] = &[
        ("white", (255, 255, 255)),
        ("black", (0, 0, 0)),
        ("red", (255, 0, 0)),
        ("green", (0, 128, 0)),
        ("lime", (0, 255, 0)),
        ("blue", (0, 0, 255)),
        ("yellow", (255, 255, 0)),
        ("silver", (192, 192, 192)),
        ("gray", (128, 128, 128)),
        ("grey", (128, 128, 128)),
        ("whitesmoke", (245, 245, 245)),
        ("snow", (255, 250, 250)),
        ("ivory", (255, 255, 240)),
        ("ghostwhite", (248, 248, 255)),
        ("navy", (0, 0, 128)),
        ("maroon", (128, 0, 0)),
    ];
    if let Some((_, (r, g, b))) = NAMED.iter().find(|(n, _)| *n == v) {
        return Some(Color::Rgb(*r, *g, *b));
    }
    // A name (`teal`) or a function (`hsl(…)`): equal to itself only.
    let word: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let function = [
        "hsl(", "hsla(", "hwb(", "lab(", "lch(", "oklab(", "oklch(", "color(",
    ]
    .iter()
    .any(|f| word.starts_with(f));
    (function || word.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| Color::Other(name_hash(word.as_bytes())))
}

/// `<style>` rules by the simple selector they apply to.
#[derive(Debug, Default)]
struct StyleSheet {
    /// Keyed `t:name`, `.class`, `#id` (lowercase): normal, `!important`.
    rules: HashMap<String, [Delta; 2]>,
}

impl StyleSheet {
    /// The rules of every `<style>` element of `html` (where it stands does
    /// not matter to a browser), outside `@`-blocks.
    fn of(html: &str) -> Self {
        let bytes = html.as_bytes();
        let mut sheet = StyleSheet::default();
        let mut i = 0;
        while let Some(at) = find_ignore_case(bytes, i, b"<style") {
            let after = at + b"<style".len();
            if !bytes
                .get(after)
                .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
            {
                i = after;
                continue;
            }
            let (_, Some(start)) = attributes(html, after) else {
                break;
            };
            let end = find_ignore_case(bytes, start, b"</style").unwrap_or(bytes.len());
            sheet.read(&css_text(&html[start..end]));
            i = end;
        }
        sheet
    }

    fn read(&mut self, css: &str) {
        let mut rest = css;
        while let Some(open) = rest.find('{') {
            let prelude = rest[..open].trim();
            // Whatever came before a stray `}` is not part of the selector.
            let prelude = prelude.rsplit('}').next().unwrap_or(prelude).trim();
            let body_start = open + 1;
            if prelude.starts_with('@') {
                // Skip the block, nested braces and all.
                let mut depth = 1usize;
                let mut end = rest.len();
                for (k, c) in rest[body_start..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = body_start + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &rest[end..];
                continue;
            }
            let close = rest[body_start..]
                .find('}')
                .map_or(rest.len(), |k| body_start + k);
            let delta = declarations(&rest[body_start..close]);
            if delta != [Delta::default(); 2] {
                for selector in prelude.split(',') {
                    self.add(selector.trim(), delta);
                }
            }
            rest = rest.get(close + 1..).unwrap_or("");
        }
    }

    fn add(&mut self, selector: &str, delta: [Delta; 2]) {
        // The element the rule styles is the last compound selector.
        let last = selector
            .rsplit(|c: char| c.is_ascii_whitespace() || matches!(c, '>' | '+' | '~'))
            .next()
            .unwrap_or("");
        if last.is_empty() || last.contains(':') {
            return;
        }
        let simple = last == selector;
        let mut keys = Vec::new();
        let mut parts = last.split_inclusive(['.', '#', '[']).peekable();
        let mut kind = 't';
        for part in parts.by_ref() {
            let name = part.trim_end_matches(['.', '#', '[']);
            if !name.is_empty() && kind != '[' && name != "*" {
                keys.push(match kind {
                    '.' => format!(".{name}"),
                    '#' => format!("#{name}"),
                    _ => format!("t:{name}"),
                });
            }
            kind = part
                .chars()
                .last()
                .filter(|c| ".#[".contains(*c))
                .unwrap_or('t');
        }
        // One simple selector takes the whole rule; anything more complex
        // is matched loosely, so it may only hide.
        let delta = if simple && keys.len() == 1 && !last.contains('[') {
            delta
        } else {
            delta.map(Delta::hiding_part)
        };
        if delta == [Delta::default(); 2] {
            return;
        }
        for key in keys {
            let slot = self.rules.entry(key).or_default();
            *slot = [slot[0].then(delta[0]), slot[1].then(delta[1])];
        }
    }

    /// What the element's attributes, matching rules and inline style say.
    fn delta(&self, name: &[u8], attrs: &Attrs) -> Delta {
        let mut d = Delta {
            gone: attrs.hidden || attrs.aria_hidden,
            ..Delta::default()
        };
        // Presentational attributes first: any CSS overrides them.
        d.color = attrs
            .color
            .as_deref()
            .or(attrs.text.as_deref())
            .and_then(color);
        d.background = attrs.bgcolor.as_deref().and_then(color);
        // The rules that match, in order: tag, classes, id.
        let mut sheet = [Delta::default(); 2];
        if !self.rules.is_empty() {
            let mut apply = |key: String| {
                if let Some(r) = self.rules.get(&key) {
                    sheet = [sheet[0].then(r[0]), sheet[1].then(r[1])];
                }
            };
            if let Ok(tag) = std::str::from_utf8(name) {
                apply(format!("t:{}", tag.to_ascii_lowercase()));
            }
            if let Some(class) = &attrs.class {
                for c in class.split_ascii_whitespace() {
                    apply(format!(".{}", c.to_lowercase()));
                }
            }
            if let Some(id) = &attrs.id {
                apply(format!("#{}", id.trim().to_lowercase()));
            }
        }
        let inline = attrs
            .style
            .as_deref()
            .map_or([Delta::default(); 2], |style| {
                declarations(&css_text(style))
            });
        // CSS Cascade §6.4: normal sheet, normal inline, important sheet,
        // important inline.
        d.then(sheet[0])
            .then(inline[0])
            .then(sheet[1])
            .then(inline[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        crate::domain::mail::html_to_text(html)
    }

    #[test]
    fn hidden_text_is_not_read() {
        let cases = [
            (
                "display none",
                r##"<div style="display:none">#close</div>Hi"##,
            ),
            (
                "display none, spaced and loud",
                r##"<div STYLE = " DISPLAY : NONE !important ">#close</div>Hi"##,
            ),
            ("hidden attribute", "<span hidden>#close</span>Hi"),
            (
                "aria-hidden",
                r##"<span aria-hidden="true">#close</span>Hi"##,
            ),
            (
                "visibility hidden",
                r##"<p style="visibility:hidden">#close</p>Hi"##,
            ),
            (
                "zero font size",
                r##"<span style="font-size:0">#close</span>Hi"##,
            ),
            (
                "zero font size in px",
                r##"<span style="font-size:0px">#close</span>Hi"##,
            ),
            (
                "one pixel font",
                r##"<span style="font-size:1px">#close</span>Hi"##,
            ),
            (
                "font shorthand",
                r##"<span style="font:0/0 a">#close</span>Hi"##,
            ),
            (
                "white on default white",
                r##"<span style="color:#fff">#close</span>Hi"##,
            ),
            (
                "white on white",
                r##"<div style="background:#ffffff"><span style="color:white">#close</span></div>Hi"##,
            ),
            (
                "near white",
                r##"<span style="color:#fafafa">#close</span>Hi"##,
            ),
            (
                "font color attribute",
                "<font color=\"#FFFFFF\">#close</font>Hi",
            ),
            (
                "same colour on a dark cell",
                r##"<table><tr><td bgcolor="#000"><font color="black">#close</font></td></tr></table>Hi"##,
            ),
            (
                "transparent",
                r##"<span style="color:transparent">#close</span>Hi"##,
            ),
            (
                "rgba zero alpha",
                r##"<span style="color:rgba(0,0,0,0)">#close</span>Hi"##,
            ),
            ("opacity", r##"<span style="opacity:0">#close</span>Hi"##),
            (
                "zero height",
                r##"<div style="max-height:0;overflow:hidden">#close</div>Hi"##,
            ),
            ("Outlook", r##"<div style="mso-hide:all">#close</div>Hi"##),
            ("template", "<template>#close</template>Hi"),
            (
                "class rule",
                "<style>.x { display: none }</style><div class=\"a x\">#close</div>Hi",
            ),
            (
                "id rule after the element",
                "<div id=\"h\">#close</div>Hi<style>#h{visibility:hidden}</style>",
            ),
            (
                "entity in the style",
                r##"<div style="display&colon;none">#close</div>Hi"##,
            ),
            (
                "numeric entity",
                r##"<div style="display&#58;none">#close</div>Hi"##,
            ),
            (
                "CSS escape",
                r##"<div style="disp\6c ay:none">#close</div>Hi"##,
            ),
            (
                "CSS comment",
                r##"<div style="display:/**/none">#close</div>Hi"##,
            ),
            (
                "an important rule beats the inline style",
                r##"<style>.w{color:#fff !important}</style><span class="a b c w" style="color:#000">#close</span>Hi"##,
            ),
            (
                "a quoted > in an attribute",
                r##"<div title=">" style="display:none">#close</div>Hi"##,
            ),
            (
                "a stray end tag inside",
                r##"<div style="display:none"></b></span>#close</div>Hi"##,
            ),
            (
                "an end tag in a comment",
                r##"<div hidden><!-- </div> -->#close</div>Hi"##,
            ),
            (
                "an end tag across a table cell",
                r##"<div hidden><table><tr><td></div>#close</td></tr></table></div>Hi"##,
            ),
            (
                "self-closing syntax is no end",
                r##"<div style="display:none"/>#close</div>Hi"##,
            ),
        ];
        for (name, html) in cases {
            let got = text(html);
            assert!(!got.contains("#close"), "{name}: {got:?}");
            assert!(
                got.contains("Hi"),
                "{name}: the visible text stays: {got:?}"
            );
        }
    }

    #[test]
    fn visible_text_is_kept() {
        let cases = [
            ("plain", "<p>#close</p>"),
            ("dark text", r##"<span style="color:#333">#close</span>"##),
            (
                "white on black",
                r##"<div style="background-color:#000"><span style="color:#fff">#close</span></div>"##,
            ),
            (
                "white on a coloured cell",
                r##"<table><tr><td bgcolor="navy"><font color="white">#close</font></td></tr></table>"##,
            ),
            (
                "visible again inside hidden visibility",
                r##"<div style="visibility:hidden"><span style="visibility:visible">#close</span></div>"##,
            ),
            (
                "readable size inside a zero one",
                r##"<div style="font-size:0"><span style="font-size:14px">#close</span></div>"##,
            ),
            (
                "after a hidden element",
                r##"<div hidden>secret</div><p>#close</p>"##,
            ),
            (
                "aria-hidden false",
                r##"<span aria-hidden="false">#close</span>"##,
            ),
            (
                "hidden rules in @media",
                "<style>@media (max-width:1px){.m{display:none}}</style><div class=m>#close</div>",
            ),
            (
                "a word that contains hidden",
                r##"<div class="unhidden" title="hidden">#close</div>"##,
            ),
        ];
        for (name, html) in cases {
            assert!(text(html).contains("#close"), "{name}: {:?}", text(html));
        }
    }

    #[test]
    fn html_with_nothing_hidden_is_not_copied() {
        let html = "<html><body><p style=\"color:#222\">Hello <b>there</b></p></body></html>";
        assert!(matches!(visible_html(html), Cow::Borrowed(_)));
    }

    #[test]
    fn a_hidden_element_too_deep_to_follow_hides_the_rest() {
        let html = format!(
            "<p>Hi</p>{}<span hidden>x</span>#close{}",
            "<div>".repeat(MAX_HTML_DEPTH + 5),
            "</div>".repeat(MAX_HTML_DEPTH + 5)
        );
        let got = text(&html);
        assert!(got.contains("Hi") && !got.contains("#close"), "{got:?}");
    }

    #[test]
    fn colours_are_read_as_browsers_read_them() {
        let cases = [
            ("#fff", Some(WHITE)),
            ("#FFFFFF", Some(WHITE)),
            ("ffffff", Some(WHITE)),
            ("#ffff", Some(WHITE)),
            ("#ffffff00", Some(Color::Transparent)),
            ("rgb(255, 255, 255)", Some(WHITE)),
            ("rgb(100% 100% 100%)", Some(WHITE)),
            ("rgba(255,255,255,0)", Some(Color::Transparent)),
            ("White", Some(WHITE)),
            ("transparent", Some(Color::Transparent)),
            ("inherit", None),
            ("url(x.png)", None),
        ];
        for (value, expected) in cases {
            assert_eq!(color(value), expected, "{value}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Pieces of hostile and ordinary HTML, glued at random.
        const PIECES: &[&str] = &[
            "<div>",
            "</div>",
            "<span hidden>",
            "</span>",
            "<p style=\"color:#fff\">",
            "</p>",
            "<td bgcolor=#000>",
            "</td>",
            "<table>",
            "</table>",
            "<!--",
            "-->",
            "<style>",
            ".x{display:none}",
            "@media x{",
            "}",
            "</style>",
            "<b class=x>",
            "</b>",
            "<",
            ">",
            "\"",
            "'",
            "=",
            "&#58;",
            "&colon",
            "\\6c",
            "/*",
            "*/",
            "#close",
            "text",
            "\u{e9}\u{3042}",
            "<script>",
            "</script>",
            "<template>",
            "</",
            "<br/>",
            " ",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn any_html_gives_a_part_of_itself(picks in prop::collection::vec(0..PIECES.len(), 0..60)) {
                let html: String = picks.iter().map(|&i| PIECES[i]).collect();
                let visible = visible_html(&html);
                prop_assert!(visible.len() <= html.len());
                let _ = crate::domain::mail::html_to_text(&html);
            }
        }
    }
}
