//! The stats page on `port + 1`: a tiny non-blocking HTTP/1.x server living in the node's
//! mio loop.
//!
//! - `GET /` — an HTML page for people (peers, roles, per-file progress, transfers, origin vs
//!   peer bytes, trust, limits and rates reached); everything printed is escaped.
//! - `GET /stats.json` — the [`StatsSnapshot`] as JSON.
//! - `GET /metrics` — Prometheus text exposition format 0.0.4.
//! - anything else: `404`; a method other than GET or HEAD: `405`; a malformed request: `400`;
//!   a request head over the size cap: `431`. Every response closes the connection.
//!
//! Robustness: at most `max_clients` connections (more are answered `503` best-effort and
//! closed), requests capped at `max_request` bytes, and a client idle for `idle_timeout` is
//! closed by [`StatsServer::handle_timeout`]. Requests are parsed with `httparse`.
//!
//! Tokens: the listener uses `token_base`, clients `token_base + 1 ..= token_base + max_clients`
//! ([`StatsServer::owns`] tells the loop which events are ours).

mod render;
mod snapshot;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};

use crate::conn::{Conn, Limits};

pub use render::{html, html_escape, label_escape, prometheus};
pub use snapshot::{
    FileStats, LimitStats, PeerStats, PolicyStats, RateStats, StatsSnapshot, Totals, TransferStats,
};

/// Caps of the stats server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsLimits {
    /// Connections served at once.
    pub max_clients: usize,
    /// Bytes of request head accepted.
    pub max_request: usize,
    /// A client silent for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for StatsLimits {
    /// 64 clients, 8 KiB requests, 10 s idle.
    fn default() -> Self {
        Self { max_clients: 64, max_request: 8 * 1024, idle_timeout: Duration::from_secs(10) }
    }
}

/// The stats HTTP server.
#[derive(Debug)]
pub struct StatsServer {
    listener: TcpListener,
    limits: StatsLimits,
    base: usize,
    clients: Vec<Option<Client>>,
    refused: u64,
    served: u64,
}

#[derive(Debug)]
struct Client {
    conn: Conn,
    last_active: Instant,
    responded: bool,
}

impl StatsServer {
    /// Binds the listening socket (e.g. `host:port+1`; port 0 picks a free one).
    pub fn bind(addr: SocketAddr, limits: StatsLimits) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let limits = StatsLimits { max_clients: limits.max_clients.max(1), ..limits };
        Ok(Self { listener, limits, base: 0, clients: Vec::new(), refused: 0, served: 0 })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
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

    /// Handles a readiness event for one of our tokens, answering with `snapshot`.
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        event: &Event,
        now: Instant,
        snapshot: &StatsSnapshot,
    ) {
        if event.token().0 == self.base {
            self.accept(registry, now);
            return;
        }
        // Tokens that are not ours (or of a client already closed) are ignored.
        let Some(slot) = event.token().0.checked_sub(self.base + 1) else { return };
        let Some(Some(client)) = self.clients.get_mut(slot) else { return };
        let keep = client.on_event(event, now, snapshot, self.limits.max_request).unwrap_or(false);
        if keep {
            if client.conn.update_interest(registry).is_ok() {
                return;
            }
        } else if client.responded {
            self.served += 1;
        }
        if let Some(c) = self.clients[slot].take() {
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
                tracing::debug!(peer = ?c.conn.peer_addr(), "stats: closing an idle client");
                c.conn.close(registry);
            }
        }
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Responses fully sent so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors or similar: keep the server up, try again later.
                    tracing::warn!(error = %e, "stats: accept failed");
                    return;
                }
            };
            let Some(slot) = self.clients.iter().position(Option::is_none) else {
                self.refused += 1;
                // Best effort: a fresh socket's send buffer takes this without blocking.
                let _ = stream.write(&response(
                    503,
                    "Service Unavailable",
                    "text/plain",
                    "",
                    b"too many clients\n",
                    true,
                ));
                continue;
            };
            let token = Token(self.base + 1 + slot);
            let limits = Limits { read_limit: self.limits.max_request + 1, write_cap: usize::MAX };
            let mut conn = Conn::accepted(stream, token, limits);
            if let Err(e) = conn.register(registry) {
                tracing::warn!(%addr, error = %e, "stats: cannot register a client");
                continue;
            }
            self.clients[slot] = Some(Client { conn, last_active: now, responded: false });
        }
    }
}

impl Client {
    /// Reads, answers and writes; `Ok(false)` when the connection should close.
    fn on_event(
        &mut self,
        event: &Event,
        now: Instant,
        snapshot: &StatsSnapshot,
        max_request: usize,
    ) -> Result<bool, crate::conn::ConnError> {
        self.conn.on_ready(event)?;
        if !self.responded {
            let fill = self.conn.fill(usize::MAX)?;
            if fill.bytes > 0 {
                self.last_active = now;
            }
            match answer(self.conn.read_buf(), max_request, snapshot) {
                Some(resp) => {
                    self.conn.send(resp);
                    self.responded = true;
                }
                None if fill.eof => return Ok(false),
                None => {}
            }
        }
        if self.responded {
            if self.conn.flush(usize::MAX)? > 0 {
                self.last_active = now;
            }
            return Ok(self.conn.queued() > 0);
        }
        Ok(true)
    }
}

/// The response to the request buffered so far, or `None` if it is still incomplete.
fn answer(buf: &[u8], max_request: usize, snapshot: &StatsSnapshot) -> Option<Bytes> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let (method, path) = match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => (req.method.unwrap_or(""), req.path.unwrap_or("")),
        Ok(httparse::Status::Partial) if buf.len() > max_request => {
            return Some(error(431, "Request Header Fields Too Large", "request too large\n"));
        }
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => {
            return Some(error(431, "Request Header Fields Too Large", "too many headers\n"));
        }
        Err(e) => return Some(error(400, "Bad Request", &format!("bad request: {e}\n"))),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let r = response(
            405,
            "Method Not Allowed",
            "text/plain",
            "Allow: GET, HEAD\r\n",
            b"only GET and HEAD\n",
            true,
        );
        return Some(Bytes::from(r));
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let (ctype, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", html(snapshot).into_bytes()),
        "/stats.json" => match serde_json::to_vec_pretty(snapshot) {
            Ok(v) => ("application/json", v),
            Err(e) => return Some(error(500, "Internal Server Error", &format!("{e}\n"))),
        },
        "/metrics" => ("text/plain; version=0.0.4; charset=utf-8", prometheus(snapshot).into_bytes()),
        _ => return Some(error(404, "Not Found", "not found: try /, /stats.json or /metrics\n")),
    };
    Some(Bytes::from(response(200, "OK", ctype, "", &body, !head_only)))
}

fn error(code: u16, reason: &str, body: &str) -> Bytes {
    Bytes::from(response(code, reason, "text/plain; charset=utf-8", "", body.as_bytes(), true))
}

/// A full response; `extra` is zero or more header lines, each ending in CRLF.
fn response(code: u16, reason: &str, ctype: &str, extra: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        r.extend_from_slice(body);
    }
    r
}

#[cfg(test)]
mod tests;
