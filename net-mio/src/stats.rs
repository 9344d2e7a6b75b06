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
//! closed by [`StatsServer::handle_timeout`]. Requests are parsed with `httparse`; the
//! listener, its client slots and the response head are [`crate::http`]'s, shared with
//! `get --serve`.

mod render;
mod snapshot;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use mio::event::Event;
use mio::{Registry, Token};

use crate::http::{Client, HttpListener, head};

pub use crate::http::HttpLimits as StatsLimits;
pub use render::{html, html_escape, label_escape, prometheus};
pub use snapshot::{
    FileStats, LimitStats, PeerStats, PolicyStats, RateStats, StatsSnapshot, Totals, TransferStats,
};

/// The stats HTTP server.
#[derive(Debug)]
pub struct StatsServer {
    http: HttpListener<bool>,
    served: u64,
}

impl StatsServer {
    /// Binds the listening socket (e.g. `host:port+1`; port 0 picks a free one).
    pub fn bind(addr: SocketAddr, limits: StatsLimits) -> io::Result<Self> {
        Ok(Self { http: HttpListener::bind(addr, limits)?, served: 0 })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// Registers the listener under `token_base`; clients get the next `max_clients` tokens.
    pub fn register(&mut self, registry: &Registry, token_base: Token) -> io::Result<()> {
        self.http.register(registry, token_base)
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        self.http.owns(token)
    }

    /// Handles a readiness event for one of our tokens, answering with `snapshot`.
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        event: &Event,
        now: Instant,
        snapshot: &StatsSnapshot,
    ) {
        if self.http.is_listener(event.token()) {
            // A client's state: whether it was answered.
            self.http.accept(registry, now, || false);
            return;
        }
        // Tokens that are not ours (or of a client already closed) are ignored.
        let Some(slot) = self.http.slot_of(event.token()) else { return };
        let max_request = self.http.limits().max_request;
        let Some(Some(client)) = self.http.clients.get_mut(slot) else { return };
        let keep = on_event(client, event, now, snapshot, max_request).unwrap_or(false);
        if keep {
            if client.conn.update_interest(registry).is_ok() {
                return;
            }
        } else if client.state {
            self.served += 1;
        }
        self.http.close(registry, slot);
    }

    /// The earliest instant a client would be closed for idling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.http.poll_timeout()
    }

    /// Closes clients idle since before `now - idle_timeout`.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) {
        self.http.handle_timeout(registry, now);
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.http.connected()
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.http.refused()
    }

    /// Responses fully sent so far.
    pub fn served(&self) -> u64 {
        self.served
    }
}

/// Reads, answers and writes; `Ok(false)` when the connection should close. The state is
/// whether the client was answered (one response per connection).
fn on_event(
    client: &mut Client<bool>,
    event: &Event,
    now: Instant,
    snapshot: &StatsSnapshot,
    max_request: usize,
) -> Result<bool, crate::conn::ConnError> {
    client.conn.on_ready(event)?;
    if !client.state {
        let fill = client.conn.fill(usize::MAX)?;
        if fill.bytes > 0 {
            client.last_active = now;
        }
        match answer(client.conn.read_buf(), max_request, snapshot) {
            Some(resp) => {
                client.conn.send(resp);
                client.state = true;
            }
            None if fill.eof => return Ok(false),
            None => {}
        }
    }
    if client.state {
        if client.conn.flush(usize::MAX)? > 0 {
            client.last_active = now;
        }
        return Ok(client.conn.queued() > 0);
    }
    Ok(true)
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

/// A full response, closing the connection; `extra` is zero or more header lines, each
/// ending in CRLF.
fn response(code: u16, reason: &str, ctype: &str, extra: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let extra = format!("Cache-Control: no-store\r\n{extra}");
    let mut r = head(code, reason, ctype, body.len() as u64, &extra, false);
    if with_body {
        r.extend_from_slice(body);
    }
    r
}

#[cfg(test)]
mod tests;
