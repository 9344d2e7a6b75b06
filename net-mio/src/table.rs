//! The connection table of a node: accepts under a cap, hands out tokens that are never
//! reused, and closes connections that do not say hello in time.
//!
//! This is what keeps "thousands of idle connections" from exhausting a tracker: past
//! `max_connections` a new connection is accepted and closed at once (counted in
//! [`ConnTable::refused`]), and an accepted connection that has not been marked with
//! [`ConnTable::hello_received`] within `hello_timeout` is closed by
//! [`ConnTable::handle_timeout`], which returns its token so the loop can tell the machine.
//!
//! Tokens count up from `first_token` and are never reused, so an event still queued for a
//! connection closed earlier in the same turn cannot reach a newer one.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Registry, Token};

use bytes::BytesMut;
use pdtp_core::Message;
use pdtp_core::wire::codec;
use pdtp_core::wire::{ErrorCode, Notice};

use crate::conn::{Conn, ConnError, Limits};

/// How long a refused connection is kept open after its `Overloaded` frame: closing a socket
/// with the client's unread hello in it sends a reset, which can destroy the frame before the
/// client reads it.
const REFUSE_LINGER: Duration = Duration::from_secs(2);

/// Refused connections kept lingering at most (the oldest is closed first past it).
const MAX_LINGERING: usize = 256;

/// What a connection refused at a cap of `max` is told.
pub fn overloaded(max: usize) -> Notice {
    Notice::new(ErrorCode::Overloaded, format!("at its limit of {max} connections; try again later"))
}

/// Tells a connection refused at the cap why, in one `Error(Overloaded)` frame written
/// without waiting (a fresh socket's buffer takes it), and half-closes it: the client reports
/// "overloaded" instead of a bare closed connection.
fn refuse(stream: &mut mio::net::TcpStream, max: usize) {
    use std::io::Write;
    let notice = overloaded(max);
    let mut frame = BytesMut::new();
    if codec::encode(&Message::Error(notice), &mut frame).is_ok() {
        let _ = stream.write(&frame);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Live connections, keyed by token.
#[derive(Debug)]
pub struct ConnTable {
    next: usize,
    max: usize,
    hello_timeout: Duration,
    limits: Limits,
    conns: BTreeMap<usize, Entry>,
    /// Hello deadlines, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    refused: u64,
    /// Refused connections, told why, closed at their deadline (oldest first).
    lingering: std::collections::VecDeque<(Instant, mio::net::TcpStream)>,
    /// Entries refused in band (the caller tells them why): not counted against the cap.
    refusing: usize,
}

#[derive(Debug)]
struct Entry {
    conn: Conn,
    hello_by: Option<Instant>,
    /// Refused at the cap, kept only to be told so in band.
    refused: bool,
}

/// What one [`ConnTable::accept_all`] took in.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Connections kept, each with a hello deadline.
    pub kept: Vec<Token>,
    /// Connections past the cap, kept (for at most the hello deadline) only so that the
    /// caller can tell them why inside their protocol (`in_band`), then close them.
    pub refused: Vec<Token>,
}

impl ConnTable {
    /// A table handing out tokens from `first_token` up, holding at most `max` connections.
    pub fn new(first_token: Token, max: usize, hello_timeout: Duration, limits: Limits) -> Self {
        Self {
            next: first_token.0,
            max: max.max(1),
            hello_timeout,
            limits,
            conns: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            refused: 0,
            lingering: std::collections::VecDeque::new(),
            refusing: 0,
        }
    }

    /// Accepts until `WouldBlock`. Each kept connection must say hello within
    /// `hello_timeout`. Connections past the cap are refused: told so in one clear frame
    /// and closed, or, `in_band` (a protocol that speaks nothing in clear), handed back as
    /// `refused` for the caller to tell (at most [`MAX_LINGERING`] at once; more are closed
    /// without a word).
    pub fn accept_all(
        &mut self,
        listener: &TcpListener,
        registry: &Registry,
        now: Instant,
        in_band: bool,
    ) -> Accepted {
        let mut accepted = Accepted::default();
        loop {
            let (stream, addr) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: stop for this turn, the listener stays registered.
                    tracing::warn!(error = %e, "accept failed");
                    break;
                }
            };
            let over = self.conns.len() - self.refusing >= self.max;
            if over && in_band {
                self.refused += 1;
                tracing::debug!(%addr, max = self.max, "connection cap reached; refusing in band");
                if self.refusing >= MAX_LINGERING {
                    continue;
                }
                let token = self.take_token();
                let mut conn = Conn::accepted(stream, token, self.limits);
                if conn.register(registry).is_ok() {
                    let by = now + self.hello_timeout.min(REFUSE_LINGER);
                    self.deadlines.insert((by, token.0));
                    self.conns.insert(token.0, Entry { conn, hello_by: Some(by), refused: true });
                    self.refusing += 1;
                    accepted.refused.push(token);
                }
                continue;
            }
            if over {
                self.refused += 1;
                tracing::debug!(%addr, max = self.max, "connection cap reached; refusing");
                let mut stream = stream;
                refuse(&mut stream, self.max);
                if self.lingering.len() >= MAX_LINGERING {
                    self.lingering.pop_front();
                }
                self.lingering.push_back((now + REFUSE_LINGER, stream));
                continue;
            }
            let token = self.take_token();
            let mut conn = Conn::accepted(stream, token, self.limits);
            if let Err(e) = conn.register(registry) {
                tracing::warn!(%addr, error = %e, "cannot register a connection");
                continue;
            }
            let hello_by = now + self.hello_timeout;
            self.deadlines.insert((hello_by, token.0));
            self.conns.insert(token.0, Entry { conn, hello_by: Some(hello_by), refused: false });
            accepted.kept.push(token);
        }
        accepted
    }

    /// Starts an outgoing connection (counted against the cap; no hello deadline: we speak
    /// first).
    pub fn connect(&mut self, addr: SocketAddr, registry: &Registry) -> Result<Token, ConnError> {
        self.connect_from(addr, None, registry)
    }

    /// [`ConnTable::connect`] from local port `from` ([`Conn::connect_from`]).
    pub fn connect_from(
        &mut self,
        addr: SocketAddr,
        from: Option<u16>,
        registry: &Registry,
    ) -> Result<Token, ConnError> {
        if self.conns.len() - self.refusing >= self.max {
            let source = io::Error::other(format!("connection cap of {} reached", self.max));
            return Err(ConnError::Connect { addr: addr.to_string(), source });
        }
        let token = self.take_token();
        let mut conn = Conn::connect_from(addr, from, token, self.limits)?;
        conn.register(registry).map_err(|source| ConnError::Connect { addr: addr.to_string(), source })?;
        self.conns.insert(token.0, Entry { conn, hello_by: None, refused: false });
        Ok(token)
    }

    /// The connection of `token`, if open.
    pub fn get(&self, token: Token) -> Option<&Conn> {
        self.conns.get(&token.0).map(|e| &e.conn)
    }

    /// The connection under `token`, if still open.
    pub fn get_mut(&mut self, token: Token) -> Option<&mut Conn> {
        self.conns.get_mut(&token.0).map(|e| &mut e.conn)
    }

    /// Clears the hello deadline of `token` (it introduced itself).
    pub fn hello_received(&mut self, token: Token) {
        if let Some(e) = self.conns.get_mut(&token.0).filter(|e| !e.refused)
            && let Some(at) = e.hello_by.take()
        {
            self.deadlines.remove(&(at, token.0));
        }
    }

    /// Closes and forgets `token`; false if it was not open.
    pub fn remove(&mut self, token: Token, registry: &Registry) -> bool {
        let Some(e) = self.conns.remove(&token.0) else { return false };
        if let Some(at) = e.hello_by {
            self.deadlines.remove(&(at, token.0));
        }
        self.refusing -= usize::from(e.refused);
        e.conn.close(registry);
        true
    }

    /// The earliest hello deadline (or refused connection to close).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = self.deadlines.first().map(|(at, _)| *at);
        let linger = self.lingering.front().map(|(at, _)| *at);
        match (hello, linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes every connection whose hello deadline is at or before `now`; returns their tokens.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) -> Vec<Token> {
        while self.lingering.front().is_some_and(|(at, _)| *at <= now) {
            self.lingering.pop_front();
        }
        let mut closed = Vec::new();
        while let Some(&(at, t)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(e) = self.conns.remove(&t) {
                tracing::debug!(peer = ?e.conn.peer_addr(), "no hello in time; closing");
                self.refusing -= usize::from(e.refused);
                e.conn.close(registry);
                closed.push(Token(t));
            }
        }
        closed
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The cap on open connections.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Tokens of the open connections, in order.
    pub fn tokens(&self) -> impl Iterator<Item = Token> + '_ {
        self.conns.keys().map(|&t| Token(t))
    }

    fn take_token(&mut self) -> Token {
        let t = Token(self.next);
        // usize is 64 bits on every platform we build for: a counter cannot wrap in practice.
        self.next = self.next.saturating_add(1);
        t
    }
}

#[cfg(test)]
mod tests;
