//! `serve`'s two listeners, the portal and the admin endpoint, against slow
//! and idle clients: raw TCP sockets to a real `ticketgate serve` process
//! with small limits. Connections that send nothing, half a head or half a
//! body are closed on time; a full connection cap leaves intake working and
//! frees up; SIGTERM ends `serve` within its shutdown deadline whatever the
//! clients hold. Every wait is on a condition with a deadline.

use crate::common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fixtures;

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");

/// A running `ticketgate serve` in its own working directory.
struct Serve {
    child: Child,
    dir: tempfile::TempDir,
    portal: SocketAddr,
    admin: SocketAddr,
    /// Its log lines so far (JSON), for failure messages.
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ok(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Serve {
    /// `serve` with the environment `env` (`TICKETGATE__WEB__…`) and, given
    /// `file_limit`, that open-file limit as both its soft and hard limit.
    fn start(env: &[(&str, &str)], file_limit: Option<u32>) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/ticketgate.toml"),
            "[support]\nname = \"Example Support\"\naddress = \"support@example.test\"\n\
             domain = \"example.test\"\nnotify = \"team@example.test\"\ntag = \"Support\"\n\
             reply_secret = \"test-secret\"\n\
             [[mailbox]]\nname = \"inbox\"\nkind = \"maildir\"\npath = \"var/maildir\"\n\
             poll_interval = \"100ms\"\n[outbox]\npoll_interval = \"100ms\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        ok(
            dir.path(),
            &["org", "add", "Customer Site A", "--domain", "customer.test"],
        );
        ok(
            dir.path(),
            &[
                "user",
                "add",
                "--no-invite",
                "alice@customer.test",
                "--name",
                "Alice Anders",
                "--org",
                "customer-site-a",
            ],
        );
        let mut command = match file_limit {
            // dash and bash: `ulimit -n` alone sets the soft and hard limit.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "ulimit -n {n} && exec \"$0\" --log-format json serve"
                    ))
                    .arg(BIN);
                c
            }
            None => {
                let mut c = Command::new(BIN);
                c.args(["--log-format", "json", "serve"]);
                c
            }
        };
        command
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(String, SocketAddr)>();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let (Some(msg), Some(addr)) = (v["message"].as_str(), v["addr"].as_str())
                        && let Ok(addr) = addr.parse()
                    {
                        let _ = tx.send((msg.to_string(), addr));
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let (mut portal, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while portal.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let (msg, addr) = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "serve did not say where it listens: {:#?}",
                    logs.lock().unwrap()
                )
            });
            match msg.as_str() {
                "portal listening" => portal = Some(addr),
                "admin endpoint listening" => admin = Some(addr),
                _ => {}
            }
        }
        Serve {
            child,
            dir,
            portal: portal.unwrap(),
            admin: admin.unwrap(),
            logs,
        }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits at most `within` for the exit status.
    fn terminate(&mut self, within: Duration) -> Result<std::process::ExitStatus, String> {
        // std cannot send SIGTERM; kill(1) can.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Ok(status);
            }
            if start.elapsed() > within {
                return Err(format!("serve still running {within:?} after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A connection, or a panic after ten seconds (a full backlog drops SYNs).
fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, 10 * SECOND)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// Reads until the server closes `conn` (end of stream or a reset),
/// discarding what it says; `Err` if it is still open after `within`.
fn closed_within(conn: &mut TcpStream, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("still open after {within:?}"));
        }
        conn.set_read_timeout(Some(left)).unwrap();
        match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return Ok(());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("still open after {within:?}"));
            }
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

/// Reads one response with a `Content-Length` (the status and the body),
/// leaving the connection open; panics after `within`.
fn response(conn: &mut TcpStream, within: Duration) -> (u16, String) {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned();
                return (status, body);
            }
        }
        match conn.read(&mut buf) {
            Ok(0) => panic!(
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(&raw)
            ),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no whole response within {within:?}: {e}"),
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn connections_that_send_nothing_or_half_a_head_are_closed_after_the_header_timeout() {
    let s = Serve::start(
        &[
            ("TICKETGATE__WEB__HEADER_TIMEOUT", "1s"),
            ("TICKETGATE__ADMIN__HEADER_TIMEOUT", "1s"),
        ],
        None,
    );
    for (name, addr) in [("portal", s.portal), ("admin", s.admin)] {
        let opened = Instant::now();
        let mut silent = connect(addr);
        let mut half = connect(addr);
        half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAcc")
            .unwrap();
        for (what, conn) in [("silent", &mut silent), ("half a head", &mut half)] {
            closed_within(conn, 10 * SECOND)
                .unwrap_or_else(|e| panic!("{name}, {what}: {e}\n{}", s.logs()));
            assert!(
                opened.elapsed() >= Duration::from_millis(900),
                "{name}, {what}: closed before the header timeout"
            );
        }
    }
}

#[test]
fn a_kept_alive_connection_waits_the_idle_timeout_for_its_next_request() {
    let s = Serve::start(
        &[
            ("TICKETGATE__ADMIN__HEADER_TIMEOUT", "1s"),
            ("TICKETGATE__ADMIN__IDLE_TIMEOUT", "3s"),
        ],
        None,
    );
    let mut conn = connect(s.admin);
    for _ in 0..2 {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut conn, 10 * SECOND).0, 200);
    }
    let answered = Instant::now();
    closed_within(&mut conn, 10 * SECOND).unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(2500),
        "closed after {idle:?}: the idle timeout is 3s, not the header timeout"
    );
}

#[test]
fn a_request_body_that_stops_arriving_is_cut_after_the_idle_timeout() {
    let s = Serve::start(&[("TICKETGATE__WEB__IDLE_TIMEOUT", "2s")], None);
    let mut conn = connect(s.portal);
    conn.write_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nemail=alice",
    )
    .unwrap();
    let start = Instant::now();
    let (status, _) = response(&mut conn, 10 * SECOND);
    assert_eq!(status, 408);
    assert!(start.elapsed() >= Duration::from_millis(1500));
    closed_within(&mut conn, 10 * SECOND).unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
}

#[test]
fn an_admin_request_body_that_stops_arriving_is_answered_408() {
    let s = Serve::start(&[("TICKETGATE__ADMIN__IDLE_TIMEOUT", "2s")], None);
    ok(
        s.dir.path(),
        &[
            "user",
            "add",
            "--no-invite",
            "sam@example.test",
            "--name",
            "Sam",
            "--role",
            "staff",
        ],
    );
    let out = Command::new(BIN)
        .args(["token", "create", "--user", "sam@example.test"])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut conn = connect(s.admin);
    conn.write_all(
        format!(
            "POST /api/tickets/1/comments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"body\""
        )
        .as_bytes(),
    )
    .unwrap();
    let (status, body) = response(&mut conn, 10 * SECOND);
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("request_timeout"), "{body}");
    closed_within(&mut conn, 10 * SECOND).unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
}

#[test]
fn with_every_slot_taken_intake_goes_on_and_healthz_answers_once_a_slot_frees() {
    // 96 descriptors in all; 8 connections per listener; clients may idle a
    // minute before their head is late.
    let s = Serve::start(
        &[
            ("TICKETGATE__WEB__MAX_CONNECTIONS", "8"),
            ("TICKETGATE__ADMIN__MAX_CONNECTIONS", "8"),
            ("TICKETGATE__WEB__HEADER_TIMEOUT", "60s"),
            ("TICKETGATE__ADMIN__HEADER_TIMEOUT", "60s"),
        ],
        Some(96),
    );
    // More idle connections than the process has descriptors (all but 8
    // wait in the backlog), and every admin slot held.
    let _flood: Vec<TcpStream> = (0..120).map(|_| connect(s.portal)).collect();
    let mut held: Vec<TcpStream> = (0..8).map(|_| connect(s.admin)).collect();
    let mut health = connect(s.admin);
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();

    // Mail is taken in and answered meanwhile.
    let maildir = s.dir.path().join("var/maildir");
    let name = "1700000001.M1.host";
    std::fs::write(
        maildir.join("tmp").join(name),
        std::fs::read(fixtures().join("_base/01_alice_opens_ticket.eml")).unwrap(),
    )
    .unwrap();
    std::fs::rename(
        maildir.join("tmp").join(name),
        maildir.join("new").join(name),
    )
    .unwrap();
    let seen = maildir.join("cur").join(format!("{name}:2,S"));
    let outbox = s.dir.path().join("var/outbox");
    let intake = Instant::now();
    while !(seen.exists() && std::fs::read_dir(&outbox).is_ok_and(|d| d.count() >= 2)) {
        assert!(
            intake.elapsed() < 20 * SECOND,
            "Maildir intake stalled while the listeners were full:\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Every admin slot is still taken: /healthz waits in the backlog.
    health.set_nonblocking(true).unwrap();
    let early = health.read(&mut [0u8; 1]);
    assert!(
        matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "/healthz was answered while all 8 slots were held: {early:?}"
    );
    health.set_nonblocking(false).unwrap();

    // One client leaves: its slot goes to the waiting request.
    drop(held.remove(0));
    let (status, body) = response(&mut health, 10 * SECOND);
    assert_eq!(status, 200, "{body}");
    assert!(
        s.logs().contains("every connection slot is taken"),
        "the full cap is logged"
    );
}

#[test]
fn sigterm_with_five_half_sent_requests_ends_serve_within_the_shutdown_timeout() {
    let mut s = Serve::start(
        &[
            ("TICKETGATE__WEB__HEADER_TIMEOUT", "60s"),
            ("TICKETGATE__WEB__SHUTDOWN_TIMEOUT", "2s"),
        ],
        None,
    );
    let files = || {
        std::fs::read_dir(format!("/proc/{}/fd", s.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = files();
    // Half of a first request each: hyper would wait for the rest forever.
    let mut slow: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut conn = connect(s.portal);
            conn.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Le")
                .unwrap();
            conn
        })
        .collect();
    let start = Instant::now();
    while files() < before + 5 {
        assert!(
            start.elapsed() < 10 * SECOND,
            "serve did not take the 5 connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Instant::now();
    let status = s
        .terminate(8 * SECOND)
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert!(status.success(), "serve exited with {status:?}");
    assert!(
        stopped.elapsed() >= Duration::from_millis(1500),
        "the slow requests were given their shutdown_timeout"
    );
    for conn in &mut slow {
        closed_within(conn, SECOND).unwrap();
    }
}
