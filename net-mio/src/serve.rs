//! `get --serve ADDR`: the content being downloaded, over HTTP/1.1, from the node's own mio
//! loop (no thread), so a media player can play and seek while the swarm fetches.
//!
//! - `GET` and `HEAD` of `/` or `/PATH` (the content's path or its last component; anything
//!   else is `404`, a method other than GET/HEAD `405`).
//! - `Range: bytes=a-b`, `a-`, `-n` (one range) → `206` with `Content-Range`; no range, an
//!   invalid one or several ranges → `200` with the whole body (RFC 9110 lets a server ignore
//!   `Range`; we never send `multipart/byteranges`); a range that selects nothing → `416`
//!   with `Content-Range: bytes */SIZE`. Every answer has `Content-Length`, content answers
//!   `Accept-Ranges: bytes` and the media type of the path's extension ([`media_type`]).
//! - Only verified bytes are sent: the body is read chunk by chunk from the peer's store
//!   ([`MediaSource`]) as each chunk's SHA-256 checks out. A read at a position not held yet
//!   waits (the client is not timed out meanwhile) and the position is reported through
//!   [`MediaServer::take_seek`], so the node can move those chunks to the front. A request
//!   that arrives before the manifest waits for it likewise.
//! - Content answers carry `Content-Security-Policy: sandbox`: a page among the content
//!   (it came from a swarm) renders with no scripts and an origin of its own.
//! - A file's answers carry `ETag`, a strong validator from the manifest's root hash (the
//!   same bytes, the same tag, on any node). `If-Range` with another tag (or a date: we send
//!   no `Last-Modified`) gets the whole body with `200` instead of the range, so a player
//!   resuming a download of changed content never splices two versions; `If-None-Match`
//!   with the tag (or `*`) gets `304`. A live stream, still growing, has no tag.
//! - Keep-alive (HTTP/1.1 unless `Connection: close`; HTTP/1.0 closes), pipelined requests
//!   answered in order.
//!
//! Bounded: at most [`SERVE_LIMITS`]`.max_clients` clients (more get `503`), request heads of
//! `max_request` bytes (`431` past it), a client silent for `idle_timeout` with nothing to wait
//! for is closed, and each client's queued output stays under [`OUT_CAP`] plus one chunk.
//! Malformed requests get `400` and that client is closed; nothing else is affected.

mod range;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use mio::event::Event;
use mio::{Registry, Token};

use crate::conn::ConnError;
use crate::http::{Client, HttpLimits, HttpListener, head};

pub use range::{RangeSpec, media_type, parse_range};

/// The caps of the media server: a few players (a browser opens several connections).
pub const SERVE_LIMITS: HttpLimits =
    HttpLimits { max_clients: 16, max_request: 8 * 1024, idle_timeout: Duration::from_secs(30) };

/// Output queued per client before the server stops reading the store for it.
pub const OUT_CAP: usize = 1 << 20;

/// Where the served bytes come from (the peer node: its manifest and verified chunks).
pub trait MediaSource {
    /// The content's size, once its manifest is known.
    fn size(&self) -> Option<u64>;
    /// Verified bytes from `offset`, at most `max` and at most to the end of the chunk that
    /// holds `offset`; `Ok(None)` while that chunk is not verified.
    fn read(&mut self, offset: u64, max: u64) -> Result<Option<Bytes>, String>;
    /// A strong entity tag for the content (quotes included), when its bytes are fixed.
    fn etag(&self) -> Option<String> {
        None
    }
    /// Whether the content is a live stream: served as one continuous body of the chunks
    /// the node delivers ([`MediaServer::push_live`]), not by position.
    fn live(&self) -> bool {
        false
    }
}

/// The HTTP server of `get --serve`.
#[derive(Debug)]
pub struct MediaServer {
    http: HttpListener<Session>,
    /// The content's path, for matching request paths and the media type.
    path: String,
    ctype: &'static str,
    /// The newest position a client started waiting at, not yet taken by the node.
    seek: Option<u64>,
    served: u64,
}

/// One client's progress.
#[derive(Debug, Default)]
struct Session {
    /// A request read but not answered yet (the size is not known yet).
    pending: Option<Request>,
    /// The body being sent: the next byte and the end (exclusive).
    body: Option<(u64, u64)>,
    /// Close once the current response is out.
    close_after: bool,
    /// The position this client waits at, if it waits for a chunk.
    waiting_at: Option<u64>,
    /// It takes the live stream: each chunk the node delivers is queued to it.
    live: bool,
}

/// A parsed request head.
#[derive(Clone, Debug)]
struct Request {
    head_only: bool,
    method_ok: bool,
    path_ok: bool,
    range: Option<String>,
    if_range: Option<String>,
    if_none_match: Option<String>,
    keep_alive: bool,
}

impl MediaServer {
    /// Binds `addr` (port 0 picks a free one) for the content at `path`.
    pub fn bind(addr: SocketAddr, path: &str) -> io::Result<Self> {
        let http = HttpListener::bind(addr, SERVE_LIMITS)?;
        let path = path.trim_start_matches('/').to_owned();
        Ok(Self { http, ctype: media_type(&path), path, seek: None, served: 0 })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// Tokens [`MediaServer::register`] needs.
    pub fn tokens(&self) -> usize {
        self.http.tokens()
    }

    /// Registers the listener under `token_base` and the clients after it.
    pub fn register(&mut self, registry: &Registry, token_base: Token) -> io::Result<()> {
        self.http.register(registry, token_base)
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        self.http.owns(token)
    }

    /// Responses fully sent so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.http.connected()
    }

    /// The newest byte position a client started waiting at since the last call: where the
    /// viewer plays now, for the download to fetch first.
    pub fn take_seek(&mut self) -> Option<u64> {
        self.seek.take()
    }

    /// A readiness event for one of our tokens.
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        event: &Event,
        now: Instant,
        src: &mut dyn MediaSource,
    ) {
        if self.http.is_listener(event.token()) {
            self.http.accept(registry, now, Session::default);
            return;
        }
        let Some(slot) = self.http.slot_of(event.token()) else { return };
        if let Some(Some(c)) = self.http.clients.get_mut(slot)
            && let Err(e) = c.conn.on_ready(event)
        {
            tracing::debug!(error = %e, "serve: client gone");
            return self.http.close(registry, slot);
        }
        self.service(registry, slot, now, src);
    }

    /// Moves every client on as far as the verified bytes allow; call once per loop turn
    /// (chunks verified meanwhile let waiting clients go on).
    pub fn pump(&mut self, registry: &Registry, now: Instant, src: &mut dyn MediaSource) {
        for slot in 0..self.http.clients.len() {
            if self.http.clients[slot]
                .as_ref()
                .is_some_and(|c| c.state.pending.is_some() || c.state.body.is_some())
            {
                self.service(registry, slot, now, src);
            }
        }
    }

    /// A live stream's next chunk, delivered in order by the node: queued to every client
    /// taking the stream. A client whose queue is full (a player that fell behind) misses
    /// the chunk, as a viewer skips one that came too late, rather than hold the node back.
    pub fn push_live(&mut self, registry: &Registry, now: Instant, bytes: &Bytes) {
        for slot in 0..self.http.clients.len() {
            let Some(Some(c)) = self.http.clients.get_mut(slot) else { continue };
            if !c.state.live {
                continue;
            }
            if c.conn.queued() < OUT_CAP {
                c.conn.send(bytes.clone());
                c.last_active = now;
            } else {
                tracing::debug!(slot, "serve: a live client fell behind; it misses a chunk");
            }
            let flushed = c.conn.flush(usize::MAX).map_err(|e| e.to_string());
            if flushed.is_err() || c.conn.update_interest(registry).is_err() {
                self.http.close(registry, slot);
            }
        }
    }

    /// The live stream ended: each client taking it is closed once its queue is out.
    pub fn end_live(&mut self, registry: &Registry, now: Instant, src: &mut dyn MediaSource) {
        for slot in 0..self.http.clients.len() {
            if let Some(Some(c)) = self.http.clients.get_mut(slot)
                && c.state.live
            {
                c.state.live = false;
                self.service(registry, slot, now, src);
            }
        }
    }

    /// The earliest instant a client would be closed for idling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.http.poll_timeout()
    }

    /// Closes idle clients (one waiting for a chunk is refreshed by [`MediaServer::pump`]).
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) {
        self.http.handle_timeout(registry, now);
    }

    fn service(&mut self, registry: &Registry, slot: usize, now: Instant, src: &mut dyn MediaSource) {
        let max_request = self.http.limits().max_request;
        let Some(Some(c)) = self.http.clients.get_mut(slot) else { return };
        let ctx = Ctx { path: &self.path, ctype: self.ctype, max_request };
        match step(c, &ctx, now, src) {
            Ok(Step { keep, served, seek }) => {
                self.served += served;
                if seek.is_some() {
                    self.seek = seek;
                }
                if keep && c.conn.update_interest(registry).is_ok() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "serve: closing a client"),
        }
        self.http.close(registry, slot);
    }
}

struct Ctx<'a> {
    path: &'a str,
    ctype: &'static str,
    max_request: usize,
}

struct Step {
    keep: bool,
    served: u64,
    seek: Option<u64>,
}

/// Reads requests, answers them and sends bodies until the client or the store has nothing
/// more for now.
fn step(
    c: &mut Client<Session>,
    ctx: &Ctx<'_>,
    now: Instant,
    src: &mut dyn MediaSource,
) -> Result<Step, String> {
    let err = |e: ConnError| e.to_string();
    let mut out = Step { keep: true, served: 0, seek: None };
    let fill = c.conn.fill(usize::MAX).map_err(err)?;
    if fill.bytes > 0 {
        c.last_active = now;
    }
    // Until the socket or the store has nothing more for now: a flush that made room lets
    // the body go on at once (no further writable edge would come for it).
    loop {
        serve_some(c, ctx, now, src, &mut out)?;
        let wrote = c.conn.flush(usize::MAX).map_err(err)?;
        if wrote > 0 {
            c.last_active = now;
        }
        if wrote == 0 || c.state.body.is_none() || c.conn.queued() >= OUT_CAP {
            break;
        }
    }
    let s = &c.state;
    let idle = s.body.is_none() && s.pending.is_none() && !s.live && c.conn.queued() == 0;
    if idle && (s.close_after || c.conn.is_eof()) {
        out.keep = false;
    }
    Ok(out)
}

/// Answers what can be answered and queues what body bytes are verified, up to the cap.
fn serve_some(
    c: &mut Client<Session>,
    ctx: &Ctx<'_>,
    now: Instant,
    src: &mut dyn MediaSource,
    out: &mut Step,
) -> Result<(), String> {
    let err = |e: ConnError| e.to_string();
    loop {
        let s = &mut c.state;
        if let Some((pos, end)) = s.body {
            let (pos, waiting) = send_body(c, pos, end, src)?;
            let s = &mut c.state;
            if waiting {
                // The wait is ours, not the client's: do not time it out meanwhile.
                c.last_active = now;
                if s.waiting_at != Some(pos) {
                    s.waiting_at = Some(pos);
                    out.seek = Some(pos);
                }
            } else {
                s.waiting_at = None;
            }
            if pos < end {
                s.body = Some((pos, end));
                break;
            }
            s.body = None;
            out.served += 1;
            continue;
        }
        if s.close_after {
            break;
        }
        if s.pending.is_none() {
            match parse(c.conn.read_buf(), ctx) {
                Parsed::Request(r, n) => {
                    c.conn.read_buf().advance(n);
                    c.state.pending = Some(r);
                }
                Parsed::Partial if c.conn.read_buf().len() > ctx.max_request => {
                    answer_error(c, 431, "Request Header Fields Too Large", "request too large\n");
                    continue;
                }
                Parsed::Partial if c.conn.may_read() => {
                    // Stopped at the read limit with requests consumed since: read on.
                    if c.conn.fill(usize::MAX).map_err(err)?.bytes == 0 {
                        break;
                    }
                }
                Parsed::Partial => break,
                Parsed::Bad(why) => {
                    answer_error(c, 400, "Bad Request", &format!("bad request: {why}\n"));
                    continue;
                }
            }
        }
        let Some(size) = src.size() else {
            // No manifest yet: the request waits for it.
            c.last_active = now;
            break;
        };
        if let Some(r) = c.state.pending.take() {
            if src.live() && r.method_ok && r.path_ok {
                answer_live(c, &r, ctx);
            } else {
                answer(c, &r, size, src.etag().as_deref(), ctx);
            }
        }
    }
    Ok(())
}

/// Queues verified bytes of `pos..end` while the client's queue has room; returns the new
/// position and whether it stopped at a chunk not verified yet.
fn send_body(
    c: &mut Client<Session>,
    mut pos: u64,
    end: u64,
    src: &mut dyn MediaSource,
) -> Result<(u64, bool), String> {
    while pos < end && c.conn.queued() < OUT_CAP {
        match src.read(pos, end - pos)? {
            Some(b) if !b.is_empty() => {
                pos += b.len() as u64;
                c.conn.send(b);
            }
            _ => return Ok((pos, true)),
        }
    }
    Ok((pos, false))
}

enum Parsed {
    Request(Request, usize),
    Partial,
    Bad(String),
}

fn parse(buf: &[u8], ctx: &Ctx<'_>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Bad(e.to_string()),
    };
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("").split(['?', '#']).next().unwrap_or("");
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let connection = header("connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = match req.version {
        Some(1) => !connection.contains("close"),
        _ => connection.contains("keep-alive"),
    };
    // A request body would be read as the next request: refuse it (and close).
    let has_body =
        header("content-length").is_some_and(|v| v.trim() != "0") || header("transfer-encoding").is_some();
    let last = ctx.path.rsplit('/').next().unwrap_or(ctx.path);
    let name = path.trim_start_matches('/');
    let r = Request {
        head_only: method == "HEAD",
        method_ok: (method == "GET" || method == "HEAD") && !has_body,
        path_ok: name.is_empty() || name == ctx.path || name == last,
        range: header("range").map(str::to_owned),
        if_range: header("if-range").map(|v| v.trim().to_owned()),
        if_none_match: header("if-none-match").map(str::to_owned),
        keep_alive: keep_alive && !has_body,
    };
    Parsed::Request(r, n)
}

/// What a request gets: status, media type, extra header lines, and the body: a byte
/// range of the content or a short text.
struct Answer {
    code: u16,
    reason: &'static str,
    ctype: &'static str,
    extra: String,
    body: Result<(u64, u64), &'static str>,
}

fn answer(c: &mut Client<Session>, r: &Request, size: u64, etag: Option<&str>, ctx: &Ctx<'_>) {
    let text = "text/plain; charset=utf-8";
    let tag_line = etag.map(|t| format!("ETag: {t}\r\n")).unwrap_or_default();
    // The content comes from a swarm: an HTML file among it must not run scripts in this
    // origin (`sandbox`: a unique origin, no scripts); media plays as before.
    let ranges = format!("Accept-Ranges: bytes\r\n{tag_line}Content-Security-Policy: sandbox\r\n");
    // `If-Range`: the range holds only for the representation the client has (strong
    // comparison; a date never matches, as we send no `Last-Modified`).
    let range = match (&r.if_range, etag) {
        (Some(v), Some(t)) if v == t => r.range.as_deref(),
        (Some(_), _) => None,
        (None, _) => r.range.as_deref(),
    };
    let not_modified = match (&r.if_none_match, etag) {
        (Some(v), Some(t)) => {
            v.split(',').map(|x| x.trim().trim_start_matches("W/")).any(|x| x == t || x == "*")
        }
        _ => false,
    };
    let a = if !r.method_ok {
        let extra = "Allow: GET, HEAD\r\n".into();
        Answer {
            code: 405,
            reason: "Method Not Allowed",
            ctype: text,
            extra,
            body: Err("only GET and HEAD\n"),
        }
    } else if !r.path_ok {
        Answer {
            code: 404,
            reason: "Not Found",
            ctype: text,
            extra: String::new(),
            body: Err("not found: try /\n"),
        }
    } else if not_modified {
        Answer { code: 304, reason: "Not Modified", ctype: ctx.ctype, extra: ranges, body: Err("") }
    } else {
        match parse_range(range, size) {
            RangeSpec::Full => {
                Answer { code: 200, reason: "OK", ctype: ctx.ctype, extra: ranges, body: Ok((0, size)) }
            }
            RangeSpec::Part(first, last) => Answer {
                code: 206,
                reason: "Partial Content",
                ctype: ctx.ctype,
                extra: format!("{ranges}Content-Range: bytes {first}-{last}/{size}\r\n"),
                body: Ok((first, last + 1)),
            },
            RangeSpec::Unsatisfiable => Answer {
                code: 416,
                reason: "Range Not Satisfiable",
                ctype: text,
                extra: format!("{ranges}Content-Range: bytes */{size}\r\n"),
                body: Err(""),
            },
        }
    };
    tracing::debug!(range = r.range.as_deref().unwrap_or("none"), status = a.code, "serve: a request");
    let s = &mut c.state;
    // A 405 may have come with a body we did not read: close rather than misread it.
    s.close_after = !r.keep_alive || a.code == 405;
    let keep_alive = !s.close_after;
    match a.body {
        Ok((first, end)) => {
            c.conn.send(Bytes::from(head(a.code, a.reason, a.ctype, end - first, &a.extra, keep_alive)));
            s.body = Some(if r.head_only { (end, end) } else { (first, end) });
        }
        Err(msg) => {
            // A 304 has no content; its length is the full representation's (RFC 9110 §8.6).
            let len = if a.code == 304 { size } else { msg.len() as u64 };
            let mut h = head(a.code, a.reason, a.ctype, len, &a.extra, keep_alive);
            if !r.head_only {
                h.extend_from_slice(msg.as_bytes());
            }
            c.conn.send(Bytes::from(h));
            s.body = Some((0, 0));
        }
    }
}

/// Answers a request for a live stream: `200` with no length (the body ends when the stream
/// does, with the connection), then the chunks the node delivers from now on. A range or
/// validator is ignored: a live stream has one position, now.
fn answer_live(c: &mut Client<Session>, r: &Request, ctx: &Ctx<'_>) {
    tracing::debug!(head_only = r.head_only, "serve: a live request");
    let h = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Security-Policy: sandbox\r\nConnection: close\r\n\r\n",
        ctx.ctype
    );
    c.conn.send(Bytes::from(h.into_bytes()));
    let s = &mut c.state;
    s.close_after = true;
    s.live = !r.head_only;
}

/// Answers a request that could not be read and closes the client after it.
fn answer_error(c: &mut Client<Session>, code: u16, reason: &str, msg: &str) {
    let mut h = head(code, reason, "text/plain; charset=utf-8", msg.len() as u64, "", false);
    h.extend_from_slice(msg.as_bytes());
    c.conn.send(Bytes::from(h));
    c.state.close_after = true;
    c.state.pending = None;
    c.state.body = Some((0, 0));
}

#[cfg(test)]
mod tests;
