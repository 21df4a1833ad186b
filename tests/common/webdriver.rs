//! A small W3C WebDriver client over the tests' HTTP client, driving
//! Debian's `chromium` through `chromedriver` (both started here, on
//! loopback, on a free port). Enough for the portal tests: open a page,
//! find, click, type, read the page, take a screenshot.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::send;

/// The WebDriver element key (W3C WebDriver §12.1).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Runs axe-core on the document (WCAG 2.x A and AA rules and best
/// practices) and hands back the serious and critical violations as text.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] })
  .then(r => done(r.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
      + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))
  .catch(e => done(['axe-core failed: ' + e]));
"#;

pub struct Driver {
    process: Child,
    addr: SocketAddr,
    session: String,
}

pub struct Element(String);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session; `None` (with
    /// the reason on stderr) when chromedriver is not installed and
    /// `TICKETGATE_TEST_BROWSER` is not set, so a plain `cargo test` runs
    /// elsewhere; `scripts/test.sh` installs both and sets it, and then a
    /// missing browser fails the test.
    pub async fn start() -> Option<Self> {
        let binary =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let required = std::env::var_os("TICKETGATE_TEST_BROWSER").is_some();
        if !std::path::Path::new(&binary).exists() {
            assert!(
                !required,
                "TICKETGATE_TEST_BROWSER is set but {binary} is missing"
            );
            eprintln!("skipping the browser test: {binary} is not installed");
            return None;
        }
        let port = free_port();
        let process = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut driver = Driver {
            process,
            addr,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-US"],
            },
        }}});
        let res = driver.call("POST", "/session", Some(caps)).await;
        driver.session = res["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        Some(driver)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string().into_bytes());
        let res = send(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_deref()
                .or(if method == "POST" { Some(b"{}") } else { None }),
        )
        .await;
        let value: Value = serde_json::from_slice(&res.body)
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}: {}", res.text()));
        if res.status >= 400 {
            panic!("webdriver {method} {path}: {} {value}", res.status);
        }
        value["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element matching CSS `selector`, waiting up to 5 s for it.
    pub async fn find(&self, selector: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let body = json!({"using": "css selector", "value": selector}).to_string();
            let res = send(
                self.addr,
                "POST",
                &self.at("/element"),
                &[("Content-Type", "application/json")],
                Some(body.as_bytes()),
            )
            .await;
            if res.status < 400 {
                let value: Value = serde_json::from_slice(&res.body).unwrap();
                let id = value["value"][ELEMENT_KEY]
                    .as_str()
                    .unwrap_or_else(|| panic!("no element id in {value}"));
                return Element(id.to_string());
            }
            assert!(
                Instant::now() < deadline,
                "no element {selector:?} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks what submits a form or follows a link, and waits until the
    /// next page has replaced this one (its `<html>` is a new element).
    pub async fn submit(&self, selector: &str) {
        let before = self.find("html").await;
        self.click(selector).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.find("html").await;
            if now.0 != before.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{selector:?} did not lead to a new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, selector: &str) {
        let e = self.find(selector).await;
        self.call("POST", &self.at(&format!("/element/{}/click", e.0)), None)
            .await;
    }

    /// Types `text` into the element (a file input takes a path).
    pub async fn type_into(&self, selector: &str, text: &str) {
        let e = self.find(selector).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{}/value", e.0)),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Picks the `<option>` whose value is `value` in the select `selector`.
    pub async fn select(&self, selector: &str, value: &str) {
        self.click(&format!("{selector} option[value=\"{value}\"]"))
            .await;
    }

    pub async fn text(&self, selector: &str) -> String {
        let e = self.find(selector).await;
        self.call("GET", &self.at(&format!("/element/{}/text", e.0)), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until `selector` matches something visible-in-DOM, up to 5 s.
    pub async fn wait_for(&self, selector: &str) {
        self.find(selector).await;
    }

    /// Resizes the window (W3C WebDriver §11.8.2): 390 wide is a phone.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.at("/window/rect"),
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Runs `script` in the page and returns what it returns (§13.2.1).
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// axe-core's serious and critical violations on the current page, one
    /// line each (rule, impact, help, the first elements). `axe` is the
    /// source of `axe.min.js`, injected into the page as a script.
    pub async fn axe(&self, axe: &str) -> Vec<String> {
        self.script(&format!("{axe}\nreturn true;")).await;
        let found = self
            .call(
                "POST",
                &self.at("/execute/async"),
                Some(json!({"script": AXE_RUN, "args": []})),
            )
            .await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("axe answered {found}"))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Whether the page is wider than the window: it would scroll sideways.
    pub async fn overflows(&self) -> bool {
        self.script("return document.documentElement.scrollWidth > window.innerWidth;")
            .await
            .as_bool()
            .expect("a boolean")
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let data = self.call("GET", &self.at("/screenshot"), None).await;
        let png = base64_decode(data.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).expect("screenshot written");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Standard base64 (RFC 4648 §4), as WebDriver returns screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
