//! A small SMTP client (RFC 5321) for the outbox's traffic: one sender, one
//! recipient, many messages, over a few reused connections.
//!
//! Why not lettre's pooled transport: it sends NOOP before every reuse, waits
//! for each command's reply, and writes the final dot in a second small write
//! without `TCP_NODELAY`, so Nagle's algorithm held that dot until the server's
//! delayed ACK (~40 ms on Linux) and fan-out stalled at ~130 messages/s. Here a
//! message costs two round trips: MAIL, RCPT and DATA in one write (PIPELINING,
//! RFC 2920), then the body with its final dot in one write. lettre still
//! formats the commands, parses replies and EHLO keywords, and encodes AUTH.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, ServerInfo,
};
use lettre::transport::smtp::response::{Response, Severity};
use rustls::pki_types::ServerName;
use tokio::io::BufReader;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

/// RFC 5321 §4.5.3.1.5 allows 512 octets a reply line; servers send longer
/// text, so allow some slack, but never an unbounded read.
const MAX_REPLY: u64 = 64 * 1024;
/// A pooled connection idle longer than this is closed rather than reused:
/// servers drop idle clients (Postfix after `smtpd_timeout`, 300 s).
const MAX_IDLE: Duration = Duration::from_secs(30);

/// Where and how to connect.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub hello: ClientId,
    pub credentials: Option<Credentials>,
    /// Bounds each connect and each transaction.
    pub timeout: Duration,
}

pub enum Tls {
    None,
    /// RFC 3207 STARTTLS, required: never send mail in clear when asked for TLS.
    Starttls(TlsConnector),
    /// Implicit TLS (RFC 8314).
    Wrapper(TlsConnector),
}

/// Why a message was not accepted.
#[derive(Debug)]
pub enum Failure {
    /// The server answered 5yz (RFC 5321 §4.2.1): it will not take this message.
    Permanent(String),
    /// 4yz, connection trouble, a timeout or a protocol surprise: try later.
    Transient(String),
}

/// Connections shared by concurrent senders: at most `max` open at once, idle
/// ones reused in last-in-first-out order (the warmest first).
pub struct SmtpClient {
    endpoint: Endpoint,
    idle: Mutex<Vec<Session>>,
    slots: Semaphore,
}

impl SmtpClient {
    pub fn new(endpoint: Endpoint, max: usize) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max.max(1)),
        }
    }

    /// Sends `message` (RFC 5322 bytes, CRLF line ends) from `from` to `to`.
    ///
    /// A reused connection the server has meanwhile closed fails before the
    /// message is handed over; that is retried on another connection (a fresh
    /// one once the idle ones are used up).
    /// A failure after the final dot was written is reported, never retried
    /// here: the server may have accepted the message.
    pub async fn send(&self, from: &Address, to: &Address, message: &[u8]) -> Result<(), Failure> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let data = dot_stuffed(message);
        loop {
            let (mut session, reused) = match self.take_idle() {
                Some(session) => (session, true),
                None => (self.connect().await?, false),
            };
            let outcome = tokio::time::timeout(
                self.endpoint.timeout,
                session.transaction(from, to, message.is_ascii(), &data),
            )
            .await
            .unwrap_or_else(|_| Err(Fault::Io("timed out".into(), true)));
            match outcome {
                Ok(()) => {
                    self.put_idle(session);
                    return Ok(());
                }
                Err(Fault::Io(_, false)) | Err(Fault::Closing(_)) if reused => continue,
                Err(Fault::Io(e, _)) | Err(Fault::Closing(e)) => {
                    return Err(Failure::Transient(e));
                }
                Err(Fault::Refused(reply)) => {
                    // The transaction failed but the connection is sound; RSET
                    // (RFC 5321 §4.1.1.5) makes it reusable.
                    let reset = tokio::time::timeout(self.endpoint.timeout, session.reset());
                    if let Ok(Ok(())) = reset.await {
                        self.put_idle(session);
                    }
                    return Err(match reply.code().severity {
                        Severity::PermanentNegativeCompletion => Failure::Permanent(text(&reply)),
                        _ => Failure::Transient(text(&reply)),
                    });
                }
            }
        }
    }

    /// Connects, says EHLO, upgrades to TLS and authenticates as configured,
    /// then says QUIT: the pre-flight check of `ticketgate check`.
    pub async fn probe(&self) -> Result<(), Failure> {
        let mut session = self.connect().await?;
        let quit = session.io.get_mut().write_all(b"QUIT\r\n");
        tokio::time::timeout(self.endpoint.timeout, quit).await.ok();
        Ok(())
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(session) = idle.pop() {
            if session.since.elapsed() < MAX_IDLE {
                return Some(session);
            }
        }
        None
    }

    fn put_idle(&self, mut session: Session) {
        session.since = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
    }

    async fn connect(&self) -> Result<Session, Failure> {
        let endpoint = &self.endpoint;
        tokio::time::timeout(endpoint.timeout, Session::open(endpoint))
            .await
            .unwrap_or_else(|_| Err(Fault::Io("connect timed out".into(), true)))
            .map_err(|fault| match fault {
                Fault::Io(e, _) | Fault::Closing(e) => Failure::Transient(e),
                Fault::Refused(reply) => Failure::Transient(text(&reply)),
            })
    }
}

/// What went wrong inside one session.
enum Fault {
    /// I/O error; `true` once the final dot may have reached the server.
    Io(String, bool),
    /// 421 before the message was handed over: the server is closing this
    /// connection (RFC 5321 §3.8), e.g. an idle one it timed out.
    Closing(String),
    /// A negative reply to a command of the transaction.
    Refused(Response),
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Self {
        Fault::Io(e.to_string(), false)
    }
}

/// Any byte stream the session can talk over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

struct Session {
    io: BufReader<Box<dyn Io>>,
    pipelining: bool,
    eight_bit: bool,
    utf8: bool,
    since: Instant,
}

impl Session {
    async fn open(endpoint: &Endpoint) -> Result<Session, Fault> {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
        // Each write is a whole batch of commands or a whole message; there is
        // nothing to gain from Nagle's coalescing, only the delayed-ACK stall.
        tcp.set_nodelay(true)?;
        let server_name = || {
            ServerName::try_from(endpoint.host.clone())
                .map_err(|e| Fault::Io(format!("TLS server name {}: {e}", endpoint.host), true))
        };
        let mut io: BufReader<Box<dyn Io>> = match &endpoint.tls {
            Tls::None | Tls::Starttls(_) => BufReader::new(Box::new(tcp)),
            Tls::Wrapper(connector) => {
                BufReader::new(Box::new(connector.connect(server_name()?, tcp).await?))
            }
        };
        expect(read_reply(&mut io).await?, 220)?;
        let mut info = ehlo(&mut io, &endpoint.hello).await?;
        if let Tls::Starttls(connector) = &endpoint.tls {
            if !info.0.supports_feature(Extension::StartTls) {
                return Err(Fault::Io("server does not offer STARTTLS".into(), true));
            }
            command(&mut io, &Starttls.to_string()).await?;
            expect(read_reply(&mut io).await?, 220)?;
            // Anything the server sent after its 220 arrived in clear and
            // could have been injected (CVE-2011-0411): refuse it.
            if !io.buffer().is_empty() {
                return Err(Fault::Io("data after STARTTLS reply".into(), true));
            }
            let plain = io.into_inner();
            io = BufReader::new(Box::new(connector.connect(server_name()?, plain).await?));
            info = ehlo(&mut io, &endpoint.hello).await?;
        }
        if let Some(credentials) = &endpoint.credentials {
            auth(&mut io, &info.0, credentials).await?;
        }
        Ok(Session {
            io,
            pipelining: info.1,
            eight_bit: info.0.supports_feature(Extension::EightBitMime),
            utf8: info.0.supports_feature(Extension::SmtpUtfEight),
            since: Instant::now(),
        })
    }

    /// MAIL, RCPT, DATA (pipelined when offered), then the dot-stuffed body.
    async fn transaction(
        &mut self,
        from: &Address,
        to: &Address,
        ascii: bool,
        data: &[u8],
    ) -> Result<(), Fault> {
        let mut parameters = Vec::new();
        if !ascii && self.eight_bit {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let ascii_addresses = [from, to]
            .iter()
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        if self.utf8 && !ascii_addresses {
            parameters.push(MailParameter::SmtpUtfEight);
        }
        let commands = [
            Mail::new(Some(from.clone()), parameters).to_string(),
            Rcpt::new(to.clone(), Vec::new()).to_string(),
            Data.to_string(),
        ];
        if self.pipelining {
            // RFC 2920 §3.1: DATA may end a pipelined group; every reply is
            // read, in order, even after a refusal.
            command(&mut self.io, &commands.concat()).await?;
            let mail = read_reply(&mut self.io).await?;
            let rcpt = read_reply(&mut self.io).await?;
            let data_reply = read_reply(&mut self.io).await?;
            let refused = [mail, rcpt].into_iter().find(|r| !completed(r));
            if let Some(refused) = refused {
                if u16::from(data_reply.code()) == 354 {
                    // A server that took DATA anyway gets an empty message
                    // (RFC 2920 §3.1), which it must refuse for want of recipients.
                    command(&mut self.io, ".\r\n").await?;
                    read_reply(&mut self.io).await?;
                }
                return Err(refusal(refused));
            }
            expect(data_reply, 354)?;
        } else {
            for c in &commands[..2] {
                command(&mut self.io, c).await?;
                let reply = read_reply(&mut self.io).await?;
                if !completed(&reply) {
                    return Err(refusal(reply));
                }
            }
            command(&mut self.io, &commands[2]).await?;
            expect(read_reply(&mut self.io).await?, 354)?;
        }
        let handed_over = |e: std::io::Error| Fault::Io(e.to_string(), true);
        let inner = self.io.get_mut();
        inner.write_all(data).await.map_err(handed_over)?;
        inner.flush().await.map_err(handed_over)?;
        // From here on the server may hold the message: no fault is "stale".
        let reply = read_reply(&mut self.io).await.map_err(|f| match f {
            Fault::Io(e, _) | Fault::Closing(e) => Fault::Io(e, true),
            refused => refused,
        })?;
        if completed(&reply) {
            Ok(())
        } else {
            Err(Fault::Refused(reply))
        }
    }

    async fn reset(&mut self) -> Result<(), Fault> {
        command(&mut self.io, &Rset.to_string()).await?;
        expect(read_reply(&mut self.io).await?, 250).map(drop)
    }
}

async fn ehlo(
    io: &mut BufReader<Box<dyn Io>>,
    hello: &ClientId,
) -> Result<(ServerInfo, bool), Fault> {
    command(io, &Ehlo::new(hello.clone()).to_string()).await?;
    let reply = expect(read_reply(io).await?, 250)?;
    let info = ServerInfo::from_response(&reply).map_err(|e| Fault::Io(e.to_string(), true))?;
    // lettre's ServerInfo does not track PIPELINING; the first line is the greeting.
    let pipelining = reply
        .message()
        .skip(1)
        .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
    Ok((info, pipelining))
}

/// RFC 4954: PLAIN or LOGIN, whichever the server offers, PLAIN first.
async fn auth(
    io: &mut BufReader<Box<dyn Io>>,
    info: &ServerInfo,
    credentials: &Credentials,
) -> Result<(), Fault> {
    let mechanism = info
        .get_auth_mechanism(&[Mechanism::Plain, Mechanism::Login])
        .ok_or_else(|| Fault::Io("server offers neither AUTH PLAIN nor LOGIN".into(), true))?;
    let bad = |e: lettre::transport::smtp::Error| Fault::Io(e.to_string(), true);
    let first = Auth::new(mechanism, credentials.clone(), None).map_err(bad)?;
    command(io, &first.to_string()).await?;
    let mut reply = read_reply(io).await?;
    // LOGIN asks for the user name, then the password.
    for _ in 0..2 {
        if u16::from(reply.code()) != 334 {
            break;
        }
        let next = Auth::new_from_response(mechanism, credentials.clone(), &reply).map_err(bad)?;
        command(io, &next.to_string()).await?;
        reply = read_reply(io).await?;
    }
    expect(reply, 235).map(drop)
}

async fn command(io: &mut BufReader<Box<dyn Io>>, line: &str) -> Result<(), Fault> {
    let inner = io.get_mut();
    inner.write_all(line.as_bytes()).await?;
    inner.flush().await?;
    Ok(())
}

/// One reply, all its lines (RFC 5321 §4.2.1: `NNN-` continues, `NNN ` ends).
async fn read_reply<R: AsyncBufRead + Unpin>(io: &mut R) -> Result<Response, Fault> {
    let mut text = String::new();
    loop {
        let start = text.len();
        let budget = MAX_REPLY.saturating_sub(start as u64);
        let n = (&mut *io).take(budget).read_line(&mut text).await?;
        if n == 0 {
            return Err(Fault::Io(
                if budget == 0 {
                    "reply too long".into()
                } else {
                    "connection closed".into()
                },
                false,
            ));
        }
        let line = &text[start..];
        if !line.ends_with('\n') {
            return Err(Fault::Io("reply too long".into(), false));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    let reply = Response::from_str(&text)
        .map_err(|e| Fault::Io(format!("unreadable reply {text:?}: {e}"), false))?;
    if u16::from(reply.code()) == 421 {
        return Err(Fault::Closing(self::text(&reply)));
    }
    Ok(reply)
}

fn expect(reply: Response, code: u16) -> Result<Response, Fault> {
    if u16::from(reply.code()) == code {
        Ok(reply)
    } else {
        Err(refusal(reply))
    }
}

/// 2yz: MAIL and RCPT may also answer 251 (RFC 5321 §3.4), not only 250.
fn completed(reply: &Response) -> bool {
    reply.code().severity == Severity::PositiveCompletion
}

fn refusal(reply: Response) -> Fault {
    Fault::Refused(reply)
}

/// `550 5.1.1 <x@y>: Recipient address rejected` for logs and `last_error`.
fn text(reply: &Response) -> String {
    let lines: Vec<&str> = reply.message().collect();
    format!("{} {}", reply.code(), lines.join(" / "))
}

/// The message as DATA carries it (RFC 5321 §4.5.2): a line starting with a
/// dot gets another, and the content ends with CRLF "." CRLF.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_with_a_lone_dot() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("plain", b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
            ("leading dot", b".a\r\n", b"..a\r\n.\r\n"),
            (
                "dot line inside",
                b"a\r\n.\r\nb\r\n",
                b"a\r\n..\r\nb\r\n.\r\n",
            ),
            ("no final CRLF", b"a", b"a\r\n.\r\n"),
            ("dot mid-line stays", b"a.b\r\n", b"a.b\r\n.\r\n"),
        ];
        for (name, input, expected) in cases {
            assert_eq!(dot_stuffed(input), expected.to_vec(), "{name}");
        }
    }

    /// What the fake server saw.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        accepted: Mutex<Vec<String>>,
        rsets: AtomicUsize,
    }

    /// A scripted ESMTP server: refuses RCPT to `reject@…`, answers 451 to a
    /// body containing `tempfail`, and closes each connection after
    /// `per_connection` accepted messages without saying so (as a server
    /// timing out an idle client may).
    async fn fake_server(pipelining: bool, per_connection: usize) -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let shared = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&shared);
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut read = BufReader::new(read);
                    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                    let (mut recipients, mut accepted) = (0, 0);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await.unwrap() == 0 {
                            return;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" if pipelining => {
                                b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                            }
                            "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                            "MAIL" => b"250 2.1.0 Ok\r\n",
                            "RCPT" if line.contains("reject@") => b"550 5.1.1 no such user\r\n",
                            "RCPT" => {
                                recipients += 1;
                                b"250 2.1.5 Ok\r\n"
                            }
                            "DATA" if recipients == 0 => b"554 5.5.1 no valid recipients\r\n",
                            "DATA" => {
                                write.write_all(b"354 go ahead\r\n").await.unwrap();
                                let mut body = String::new();
                                while !body.ends_with("\r\n.\r\n") {
                                    if read.read_line(&mut body).await.unwrap() == 0 {
                                        return;
                                    }
                                }
                                recipients = 0;
                                if body.contains("tempfail") {
                                    b"451 4.3.0 try later\r\n"
                                } else {
                                    seen.accepted.lock().unwrap().push(body);
                                    accepted += 1;
                                    if accepted == per_connection {
                                        write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                                        return;
                                    }
                                    b"250 2.0.0 queued\r\n"
                                }
                            }
                            "RSET" => {
                                recipients = 0;
                                seen.rsets.fetch_add(1, Ordering::SeqCst);
                                b"250 2.0.0 Ok\r\n"
                            }
                            _ => b"502 5.5.2 what\r\n",
                        };
                        write.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        (port, seen)
    }

    fn client(port: u16) -> SmtpClient {
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port,
            tls: Tls::None,
            hello: ClientId::Domain("example.test".into()),
            credentials: None,
            timeout: Duration::from_secs(10),
        };
        SmtpClient::new(endpoint, 2)
    }

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn messages_reuse_one_connection_with_and_without_pipelining() {
        for pipelining in [true, false] {
            let (port, seen) = fake_server(pipelining, usize::MAX).await;
            let client = client(port);
            for i in 0..3 {
                let body = format!("Subject: {i}\r\n\r\n.dot\r\n");
                client
                    .send(
                        &addr("s@example.test"),
                        &addr("r@example.test"),
                        body.as_bytes(),
                    )
                    .await
                    .unwrap();
            }
            assert_eq!(
                seen.connections.load(Ordering::SeqCst),
                1,
                "pipelining {pipelining}"
            );
            let accepted = seen.accepted.lock().unwrap().clone();
            assert_eq!(accepted.len(), 3);
            assert_eq!(accepted[2], "Subject: 2\r\n\r\n..dot\r\n.\r\n");
        }
    }

    #[tokio::test]
    async fn a_refused_recipient_is_permanent_and_the_connection_is_reset_for_reuse() {
        for pipelining in [true, false] {
            let (port, seen) = fake_server(pipelining, usize::MAX).await;
            let client = client(port);
            let refused = client
                .send(
                    &addr("s@example.test"),
                    &addr("reject@example.test"),
                    b"x\r\n",
                )
                .await;
            assert!(
                matches!(&refused, Err(Failure::Permanent(e)) if e.starts_with("550")),
                "{refused:?}"
            );
            client
                .send(&addr("s@example.test"), &addr("r@example.test"), b"x\r\n")
                .await
                .unwrap();
            assert_eq!(seen.rsets.load(Ordering::SeqCst), 1);
            assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
            assert_eq!(seen.accepted.lock().unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_temporary_refusal_after_the_body_is_transient() {
        let (port, seen) = fake_server(true, usize::MAX).await;
        let result = client(port)
            .send(
                &addr("s@example.test"),
                &addr("r@example.test"),
                b"tempfail\r\n",
            )
            .await;
        assert!(
            matches!(&result, Err(Failure::Transient(e)) if e.starts_with("451")),
            "{result:?}"
        );
        assert!(seen.accepted.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_connection_the_server_dropped_while_idle_is_replaced_and_each_message_sent_once() {
        let (port, seen) = fake_server(true, 1).await;
        let client = client(port);
        for _ in 0..3 {
            client
                .send(&addr("s@example.test"), &addr("r@example.test"), b"x\r\n")
                .await
                .unwrap();
        }
        assert_eq!(seen.accepted.lock().unwrap().len(), 3);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn no_server_is_a_transient_failure() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let result = client(port)
            .send(&addr("s@example.test"), &addr("r@example.test"), b"x\r\n")
            .await;
        assert!(matches!(result, Err(Failure::Transient(_))), "{result:?}");
    }
}
