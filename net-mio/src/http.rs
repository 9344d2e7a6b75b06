//! The HTTP/1.x plumbing the stats page and `get --serve` share: a non-blocking listener with
//! a fixed table of client slots living in the node's mio loop, the cap, the idle timeout,
//! and the response head. Each server keeps its own per-client state `S` and its own
//! request handling (parsed with `httparse`).
//!
//! Tokens: the listener uses `token_base`, clients `token_base + 1 ..= token_base + max_clients`
//! ([`HttpListener::owns`] tells the loop which events are ours).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Registry, Token};

use crate::conn::{Conn, Limits};

/// Caps of one HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once.
    pub max_clients: usize,
    /// Bytes of request head accepted.
    pub max_request: usize,
    /// A client silent for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    /// 64 clients, 8 KiB requests, 10 s idle.
    fn default() -> Self {
        Self { max_clients: 64, max_request: 8 * 1024, idle_timeout: Duration::from_secs(10) }
    }
}

/// One connected client: its connection, when it last did anything, the server's state.
#[derive(Debug)]
pub struct Client<S> {
    /// The connection.
    pub conn: Conn,
    /// The last instant bytes moved (or the server refreshed it).
    pub last_active: Instant,
    /// The server's per-client state.
    pub state: S,
}

/// A listener and its table of client slots.
#[derive(Debug)]
pub struct HttpListener<S> {
    listener: TcpListener,
    limits: HttpLimits,
    base: usize,
    /// The client slots; slot `i` is token `base + 1 + i`.
    pub clients: Vec<Option<Client<S>>>,
    refused: u64,
}

impl<S> HttpListener<S> {
    /// Binds the listening socket (port 0 picks a free one).
    pub fn bind(addr: SocketAddr, limits: HttpLimits) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let limits = HttpLimits { max_clients: limits.max_clients.max(1), ..limits };
        Ok(Self { listener, limits, base: 0, clients: Vec::new(), refused: 0 })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The caps.
    pub fn limits(&self) -> HttpLimits {
        self.limits
    }

    /// Tokens needed: the listener and one per client slot.
    pub fn tokens(&self) -> usize {
        1 + self.limits.max_clients
    }

    /// Registers the listener under `token_base`; clients get the next `max_clients` tokens.
    pub fn register(&mut self, registry: &Registry, token_base: Token) -> io::Result<()> {
        self.base = token_base.0;
        self.clients = (0..self.limits.max_clients).map(|_| None).collect();
        registry.register(&mut self.listener, token_base, Interest::READABLE)
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 <= self.base + self.limits.max_clients
    }

    /// Whether `token` is the listener's.
    pub fn is_listener(&self, token: Token) -> bool {
        token.0 == self.base
    }

    /// The slot of a client token that is still connected.
    pub fn slot_of(&self, token: Token) -> Option<usize> {
        let slot = token.0.checked_sub(self.base + 1)?;
        self.clients.get(slot)?.as_ref().map(|_| slot)
    }

    /// Accepts until `WouldBlock`; past the cap, answers `503` best-effort and closes.
    pub fn accept(&mut self, registry: &Registry, now: Instant, mut state: impl FnMut() -> S) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors or similar: keep the server up, try again later.
                    tracing::warn!(error = %e, "http: accept failed");
                    return;
                }
            };
            let Some(slot) = self.clients.iter().position(Option::is_none) else {
                self.refused += 1;
                // Best effort: a fresh socket's send buffer takes this without blocking.
                let body = b"too many clients\n";
                let mut r = head(503, "Service Unavailable", "text/plain", body.len() as u64, "", false);
                r.extend_from_slice(body);
                let _ = stream.write(&r);
                continue;
            };
            let token = Token(self.base + 1 + slot);
            let limits = Limits { read_limit: self.limits.max_request + 1, write_cap: usize::MAX };
            let mut conn = Conn::accepted(stream, token, limits);
            if let Err(e) = conn.register(registry) {
                tracing::warn!(%addr, error = %e, "http: cannot register a client");
                continue;
            }
            self.clients[slot] = Some(Client { conn, last_active: now, state: state() });
        }
    }

    /// Closes the client in `slot`.
    pub fn close(&mut self, registry: &Registry, slot: usize) {
        if let Some(c) = self.clients.get_mut(slot).and_then(Option::take) {
            c.conn.close(registry);
        }
    }

    /// The earliest instant a client would be closed for idling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clients.iter().flatten().map(|c| c.last_active + self.limits.idle_timeout).min()
    }

    /// Closes clients idle since before `now - idle_timeout`.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) {
        for slot in &mut self.clients {
            if slot.as_ref().is_some_and(|c| c.last_active + self.limits.idle_timeout <= now)
                && let Some(c) = slot.take()
            {
                tracing::debug!(peer = ?c.conn.peer_addr(), "http: closing an idle client");
                c.conn.close(registry);
            }
        }
    }

    /// Connected clients.
    pub fn connected(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// A response head for a body of `len` bytes; `extra` is zero or more header lines, each
/// ending in CRLF. `keep_alive: false` adds `Connection: close`.
pub fn head(code: u16, reason: &str, ctype: &str, len: u64, extra: &str, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "" } else { "Connection: close\r\n" };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n\
         X-Content-Type-Options: nosniff\r\n{connection}{extra}\r\n"
    )
    .into_bytes()
}
