//! Serving HTTP/1.1 on a listener with limits, for both the portal and the
//! admin endpoint: a connection holds a file descriptor and a task for as
//! long as the client likes unless the server says otherwise, so every
//! phase of a connection has a deadline here (`[web]`/`[admin]`
//! `header_timeout`, `idle_timeout`), at most `max_connections` are served
//! at once, and a shutdown waits at most `shutdown_timeout`.
//!
//! - **Over the cap** a connection is not accepted: it waits in the
//!   kernel's listen backlog, costing this process no file descriptor,
//!   and is served as soon as a slot frees. Each slot is freed within a
//!   bounded time (the deadlines below), so a newcomer waits at most that
//!   long; when the backlog itself is full the kernel refuses new ones.
//! - **The request head** (RFC 9112 §2.1: request line and header
//!   fields) must arrive whole within `header_timeout` of the connection
//!   opening, or of the first byte of a request that follows on a kept-alive
//!   connection.
//! - **Between requests** a kept-alive connection (RFC 9112 §9.3) waits
//!   `idle_timeout` for the next request's first byte, then is closed.
//! - **A body or a response that stops moving** for `idle_timeout` ends
//!   the connection: a request body that pauses that long fails the
//!   handler's read (408), a client that stops reading our response is cut.
//! - **Shutdown**: the listener closes, idle connections close at once,
//!   requests in flight get `shutdown_timeout` to finish (their connections
//!   answer `Connection: close`), then whatever is left is cut.
//!
//! hyper's own header timer is not used: it starts again right after each
//! response, so it would close kept-alive connections after
//! `header_timeout` and leave no room for a longer idle wait.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::Instrument;

use crate::config::ListenLimits;

/// The listen backlog (clamped by the kernel to `net.core.somaxconn`):
/// connections over `max_connections` wait here, so it is larger than
/// std's 128.
const BACKLOG: u32 = 1024;

/// Binds `addr` (`host:port`) for `serve`, with room in the backlog for
/// the connections that wait for a slot.
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // A restarted `serve` binds again while old connections linger in
        // TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
}

/// Serves `router` on `listener` within `limits` until `cancel` fires, then
/// shuts down as the module head says. `name` is the listener in logs.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: ListenLimits,
    cancel: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let cut = CancellationToken::new();
    let mut full_since: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Said once per episode, not once per waiting client.
                if full_since.is_none() {
                    tracing::warn!(
                        listener = name,
                        max_connections = limits.max_connections,
                        "every connection slot is taken; new connections wait in the backlog"
                    );
                    full_since = Some(Instant::now());
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        if let Some(since) = full_since.take() {
            tracing::info!(
                listener = name,
                waited_ms = since.elapsed().as_millis() as u64,
                "a connection slot is free again"
            );
        }
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or memory: the connection stays in
                    // the backlog; try again shortly instead of spinning.
                    tracing::warn!(listener = name, error = %e, "cannot accept a connection");
                    if !is_per_connection(&e) {
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        // Small writes (a response head) go out at once (RFC 9293 §3.7.4).
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let closing = closing.clone();
        let cut = cut.clone();
        connections.spawn(async move {
            connection(stream, peer, router, limits, closing, cut).await;
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(limits.shutdown_timeout.0, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            connections = connections.len(),
            "shutdown_timeout reached: cutting the connections still open"
        );
        cut.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Errors that concern one connection only (it was reset before we took
/// it); anything else (no descriptors, no memory) calls for a pause.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A request's path as logs show it: a sign-in link's secret (`/login/…`)
/// is a credential until used, so it is left out.
fn loggable_path(path: &str) -> &str {
    match path.find("/login/") {
        Some(at) => &path[..at + "/login/".len()],
        None => path,
    }
}

/// One connection, served until it ends, times out, or `cut` fires.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ListenLimits,
    closing: CancellationToken,
    cut: CancellationToken,
) {
    let phase = Arc::new(Mutex::new(Shared {
        phase: Phase::Head(Instant::now() + limits.header_timeout.0),
        reader: None,
    }));
    let io = TokioIo::new(Guarded::new(stream, phase.clone(), limits));
    let pause = limits.idle_timeout.0;
    let requests = Arc::new(AtomicU64::new(0));
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let request = requests.fetch_add(1, Ordering::Relaxed);
        set(&phase, Phase::Busy(request));
        let mut req = req.map(|body| {
            Body::new(Paced {
                inner: body,
                pause,
                timer: None,
            })
        });
        req.extensions_mut().insert(ConnectInfo(peer));
        // What the handler logs carries the request it serves.
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %loggable_path(req.uri().path()),
            peer = %peer.ip(),
        );
        let router = router.clone();
        let phase = phase.clone();
        async move {
            let res = match router.oneshot(req).instrument(span).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            let mut body = Finished {
                inner: Body::empty(),
                phase,
                pause,
                request,
            };
            let (parts, inner) = res.into_parts();
            if hyper::body::Body::is_end_stream(&inner) {
                // No body to send (hyper may never poll it): done now.
                body.finish();
            }
            body.inner = inner;
            Ok::<_, Infallible>(hyper::Response::from_parts(parts, Body::new(body)))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended");
                }
                return;
            }
            _ = closing.cancelled(), if !asked_to_close => {
                asked_to_close = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = cut.cancelled() => return,
        }
    }
}

/// Where a connection stands, shared by its socket and its service.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request head: it must be whole by then.
    Head(Instant),
    /// Between requests: the next one must start by then.
    Idle(Instant),
    /// A request (numbered from 0 on the connection) is being handled;
    /// its body's pauses are timed by `Paced`.
    Busy(u64),
}

/// A connection's phase, and the task waiting to read while a request was
/// handled: hyper waits for the socket only, so when the request ends that
/// task is woken to read again and arm the idle deadline.
struct Shared {
    phase: Phase,
    reader: Option<Waker>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn set(shared: &Mutex<Shared>, to: Phase) {
    lock(shared).phase = to;
}

fn get(shared: &Mutex<Shared>) -> Phase {
    lock(shared).phase
}

/// The socket with the connection's deadlines: reads time out by the
/// phase, writes when the client has taken nothing for `idle_timeout`.
struct Guarded {
    stream: TcpStream,
    phase: Arc<Mutex<Shared>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// A write is waiting on the client (the timer is armed).
    write_stalled: bool,
}

impl Guarded {
    fn new(stream: TcpStream, phase: Arc<Mutex<Shared>>, limits: ListenLimits) -> Self {
        let now = Instant::now();
        Self {
            stream,
            phase,
            header_timeout: limits.header_timeout.0,
            idle_timeout: limits.idle_timeout.0,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_stalled: false,
        }
    }

    /// `Pending`, unless the write timer (armed at the first stall) ran out.
    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.write_stalled {
            self.write_stalled = true;
            let deadline = Instant::now() + self.idle_timeout;
            self.write_timer.as_mut().reset(deadline);
        }
        if self.write_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no response bytes for idle_timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut shared = lock(&this.phase);
                    if let Phase::Idle(_) = shared.phase {
                        // The next request has begun: its head is now timed.
                        shared.phase = Phase::Head(Instant::now() + this.header_timeout);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = {
                    let mut shared = lock(&this.phase);
                    match shared.phase {
                        Phase::Head(at) | Phase::Idle(at) => at,
                        Phase::Busy(_) => {
                            shared.reader = Some(cx.waker().clone());
                            return Poll::Pending;
                        }
                    }
                };
                if this.read_timer.deadline() != deadline {
                    this.read_timer.as_mut().reset(deadline);
                }
                if this.read_timer.as_mut().poll(cx).is_ready() {
                    let what = match get(&this.phase) {
                        Phase::Idle(_) => "no new request within idle_timeout",
                        _ => "the request head was not complete within header_timeout",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.write_pending(cx),
            ready => {
                this.write_stalled = false;
                ready
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.write_pending(cx),
            ready => {
                this.write_stalled = false;
                ready
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_shutdown(cx) {
            Poll::Pending => this.write_pending(cx),
            ready => ready,
        }
    }
}

/// A request body that fails when nothing arrives for `pause`.
struct Paced {
    inner: Incoming,
    pause: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

/// The error a request body ends with when it stops arriving.
#[derive(Debug, thiserror::Error)]
#[error("the request body paused longer than idle_timeout")]
pub struct BodyTimedOut;

/// Whether `e`, the error of reading a request body, is a pause that
/// `idle_timeout` ended (408), rather than a broken or oversized body.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        next = e.source();
    }
    false
}

impl hyper::body::Body for Paced {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let pause = this.pause;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that, once sent to its end (or dropped), makes its
/// connection idle. Its end is seen in `poll_frame`, since hyper may keep
/// a finished body until the next response; the number of its request
/// keeps a late drop from marking a later request's connection idle.
struct Finished {
    inner: Body,
    phase: Arc<Mutex<Shared>>,
    pause: Duration,
    request: u64,
}

impl Finished {
    fn finish(&self) {
        let reader = {
            let mut shared = lock(&self.phase);
            match shared.phase {
                Phase::Busy(n) if n == self.request => {
                    shared.phase = Phase::Idle(Instant::now() + self.pause);
                    shared.reader.take()
                }
                _ => None,
            }
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.finish();
    }
}

impl hyper::body::Body for Finished {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(None | Some(Err(_))) => this.finish(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finish(),
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `Content-Disposition: attachment` for a file named `filename` (cleaned
/// again here: names stored before `domain::clean` existed may hold a path
/// or bidi controls), with an ASCII fallback name and the exact name in
/// `filename*` (RFC 6266 §4.3, RFC 8187 §3.2 encoding).
pub fn attachment_disposition(filename: &str) -> axum::http::HeaderValue {
    let filename = crate::domain::clean::file_name(filename);
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    axum::http::HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(axum::http::HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_named_without_a_path_or_bidi_controls() {
        let cases = [
            (
                "report.pdf",
                "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf",
            ),
            (
                "../../../tmp/pwn.txt",
                "attachment; filename=\"pwn.txt\"; filename*=UTF-8''pwn.txt",
            ),
            (
                "invoice\u{202E}fdp.exe",
                "attachment; filename=\"invoicefdp.exe\"; filename*=UTF-8''invoicefdp.exe",
            ),
            (
                "Bericht \"Q1\" ü.txt",
                "attachment; filename=\"Bericht _Q1_ _.txt\"; \
                 filename*=UTF-8''Bericht%20%22Q1%22%20%C3%BC.txt",
            ),
        ];
        for (name, want) in cases {
            assert_eq!(
                attachment_disposition(name).to_str().unwrap(),
                want,
                "{name:?}"
            );
        }
        let long = "a".repeat(5_000_000);
        assert!(attachment_disposition(&long).len() < 1000);
    }
}
