//! A non-blocking TCP connection for a mio loop: bounded input buffer, capped output queue.
//!
//! Framing is not this module's business: [`Conn`] hands raw bytes up through
//! [`Conn::read_buf`] and takes [`Bytes`] segments down through [`Conn::send`], or ranges of
//! a file through [`Conn::send_file`] (written with `sendfile(2)`: the kernel moves the bytes
//! from the page cache to the socket, they never enter this process).
//!
//! Readiness is *cached*: mio is edge-triggered, so an event sets "readable"/"writable" and
//! only a `WouldBlock` clears it. That lets the loop stop early (a full input buffer, an
//! exhausted rate-limit budget) and come back later without waiting for another event:
//!
//! ```text
//!   event ──> on_ready() ──> fill(budget) ──> caller parses and consumes read_buf()
//!                 │                                   │
//!                 │        (buffer was full: fill() again once consumed)
//!                 └────> flush(budget) ──> update_interest(registry)
//! ```
//!
//! Backpressure both ways:
//! - input: [`Conn::fill`] stops once the buffer holds `read_limit` bytes; the kernel's buffer
//!   then fills and TCP flow control slows the sender. It resumes when the caller consumes.
//! - output: [`Conn::send`] always queues (a message is never split by refusal), and
//!   [`Conn::over_cap`] tells the caller to stop producing; the queue is therefore bounded by
//!   the cap plus one message.
//!
//! `WRITABLE` interest is registered only while output is pending or a connect is in
//! progress (STYLE 21); `READABLE` stays registered until the peer's end of stream.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// Segments written per `writev` call.
const MAX_IOVECS: usize = 64;
/// Bytes read per `read` call at most.
const READ_CHUNK: usize = 64 * 1024;

/// Buffer limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop reading once this many unconsumed bytes are buffered.
    pub read_limit: usize,
    /// Report [`Conn::over_cap`] once this many bytes are queued for output.
    pub write_cap: usize,
}

impl Default for Limits {
    /// 1 MiB in, 4 MiB out: several 250 kB chunks in flight, bounded per connection.
    fn default() -> Self {
        Self { read_limit: 1 << 20, write_cap: 4 << 20 }
    }
}

/// A non-blocking TCP connection driven by mio readiness events.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// The remote address: the connect target, or the accepted peer's.
    remote: Option<SocketAddr>,
    token: Token,
    limits: Limits,
    connecting: bool,
    readable: bool,
    writable: bool,
    eof: bool,
    rbuf: BytesMut,
    out: VecDeque<Segment>,
    queued: usize,
    registered: Option<Interest>,
    bytes_in: u64,
    bytes_out: u64,
}

/// A byte range of an open file, queued for output with `sendfile(2)`.
#[derive(Clone, Debug)]
pub struct FileRange {
    /// The file (shared: the store keeps it open too).
    pub file: Arc<File>,
    /// Where the range starts.
    pub offset: u64,
    /// Its length in bytes.
    pub len: usize,
}

/// One queued piece of output.
#[derive(Debug)]
enum Segment {
    Mem(Bytes),
    File(FileRange),
}

impl Segment {
    fn len(&self) -> usize {
        match self {
            Segment::Mem(b) => b.len(),
            Segment::File(r) => r.len,
        }
    }
}

/// What one [`Conn::fill`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fill {
    /// Bytes appended to the read buffer.
    pub bytes: usize,
    /// The peer closed its sending side (no more input will come).
    pub eof: bool,
}

/// Why a connection is unusable; the caller closes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// A non-blocking connect failed (refused, unreachable, timed out).
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address we tried.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// A read or write failed (reset, broken pipe).
    #[error("connection {peer}: {source}")]
    Io {
        /// The remote address, if known.
        peer: String,
        /// The OS error.
        source: io::Error,
    },
}

impl Conn {
    /// Starts a non-blocking connect; the connection completes on a later writable event.
    pub fn connect(addr: SocketAddr, token: Token, limits: Limits) -> Result<Self, ConnError> {
        Self::connect_from(addr, None, token, limits)
    }

    /// [`Conn::connect`] from local port `from` (the node's listening port, shared:
    /// [`crate::reuse`]), or from any port when `from` is `None` or binding it fails.
    pub fn connect_from(
        addr: SocketAddr,
        from: Option<u16>,
        token: Token,
        limits: Limits,
    ) -> Result<Self, ConnError> {
        let bound = from.map(|port| crate::reuse::connect_from(port, addr));
        let stream = match bound {
            Some(Ok(s)) => s,
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!(%addr, error = %e, "cannot dial from the listening port; from any port");
                }
                TcpStream::connect(addr)
                    .map_err(|source| ConnError::Connect { addr: addr.to_string(), source })?
            }
        };
        let mut c = Self::new(stream, token, limits);
        c.connecting = true;
        c.readable = false;
        c.writable = false;
        c.remote = Some(addr);
        Ok(c)
    }

    /// Wraps an accepted stream.
    pub fn accepted(stream: TcpStream, token: Token, limits: Limits) -> Self {
        // Small control messages must not wait for Nagle; ignore failure (it is an optimisation).
        let _ = stream.set_nodelay(true);
        let remote = stream.peer_addr().ok();
        Self { remote, ..Self::new(stream, token, limits) }
    }

    /// The mio token this connection is registered under.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Registers with `registry` (call once, after creating).
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.update_interest(registry)
    }

    /// Records a readiness event; finishes a pending connect.
    ///
    /// Returns `Ok(true)` when this event completed the connect.
    pub fn on_ready(&mut self, event: &Event) -> Result<bool, ConnError> {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.writable = true;
        }
        if !self.connecting || !self.writable {
            return Ok(false);
        }
        let fail = |source| ConnError::Connect { addr: self.addr_for_errors(), source };
        if let Some(e) = self.stream.take_error().map_err(fail)? {
            return Err(fail(e));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                let _ = self.stream.set_nodelay(true);
                Ok(true)
            }
            // A spurious wake-up: still connecting.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.writable = false;
                Ok(false)
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// Reads until `WouldBlock`, end of stream, the read limit, or `budget` bytes.
    pub fn fill(&mut self, budget: usize) -> Result<Fill, ConnError> {
        let room = self.limits.read_limit.saturating_sub(self.rbuf.len());
        let mut buf = std::mem::take(&mut self.rbuf);
        let r = self.read_into(&mut buf, budget.min(room));
        self.rbuf = buf;
        r
    }

    /// Reads into the caller's buffer (a decoder's, so bytes are not copied again) until
    /// `WouldBlock`, end of stream, `budget` bytes or the read limit, which here bounds what
    /// one call reads (the caller consumes between calls). Stopping at a bound leaves the
    /// connection readable ([`Conn::may_read`]): call again next turn.
    pub fn fill_into(&mut self, buf: &mut BytesMut, budget: usize) -> Result<Fill, ConnError> {
        self.read_into(buf, budget.min(self.limits.read_limit))
    }

    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> Result<Fill, ConnError> {
        let mut fill = Fill { bytes: 0, eof: self.eof };
        while self.readable && !self.connecting && !self.eof && fill.bytes < max {
            let want = (max - fill.bytes).min(READ_CHUNK);
            let old = buf.len();
            buf.resize(old + want, 0);
            let r = self.stream.read(&mut buf[old..]);
            buf.truncate(old + *r.as_ref().unwrap_or(&0));
            match r {
                Ok(0) => {
                    self.eof = true;
                    fill.eof = true;
                }
                Ok(n) => {
                    fill.bytes += n;
                    self.bytes_in += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(fill)
    }

    /// Unconsumed input; the caller splits complete frames off the front.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// Whether reading stopped at the read limit (consume, then call [`Conn::fill`] again).
    pub fn read_paused(&self) -> bool {
        self.readable && !self.eof && self.rbuf.len() >= self.limits.read_limit
    }

    /// Whether the socket may still have input to read (no `WouldBlock` seen since the last
    /// readable event).
    pub fn may_read(&self) -> bool {
        self.readable && !self.eof && !self.connecting
    }

    /// Queues bytes for output (never refused; check [`Conn::over_cap`] before producing more).
    pub fn send(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.out.push_back(Segment::Mem(bytes));
        }
    }

    /// Queues a range of a file for output, sent with `sendfile(2)` when its turn comes (the
    /// same rules as [`Conn::send`]). A file that turns out shorter than the range fails the
    /// connection.
    pub fn send_file(&mut self, range: FileRange) {
        if range.len > 0 {
            self.queued += range.len;
            self.out.push_back(Segment::File(range));
        }
    }

    /// Writes queued bytes until `WouldBlock`, the queue is empty, or `budget` bytes; returns
    /// the bytes written. Nothing is written while connecting.
    pub fn flush(&mut self, budget: usize) -> Result<usize, ConnError> {
        let mut total = 0;
        while self.writable && !self.connecting && !self.out.is_empty() && total < budget {
            let left = budget - total;
            let r = match self.out.front() {
                Some(Segment::File(f)) => {
                    let mut offset = f.offset;
                    rustix::fs::sendfile(&self.stream, &*f.file, Some(&mut offset), f.len.min(left))
                        .map_err(io::Error::from)
                }
                _ => self.write_memory(left),
            };
            match r {
                Ok(0) => {
                    return Err(self.io_error(io::Error::new(io::ErrorKind::WriteZero, "wrote zero bytes")));
                }
                Ok(n) => {
                    self.consume_out(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(total)
    }

    /// Whether the output queue is at or over its cap (stop producing until it drains).
    pub fn over_cap(&self) -> bool {
        self.queued >= self.limits.write_cap
    }

    /// Bytes queued for output.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether a flush could make progress now without waiting for an event.
    pub fn may_write(&self) -> bool {
        self.writable && !self.connecting && !self.out.is_empty()
    }

    /// Brings the registered interest in line with the state: `READABLE` until end of
    /// stream, `WRITABLE` only while connecting or output is pending.
    pub fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let read = (!self.eof).then_some(Interest::READABLE);
        let write = (self.connecting || !self.out.is_empty()).then_some(Interest::WRITABLE);
        let want = match (read, write) {
            (Some(r), Some(w)) => Some(r | w),
            (r, w) => r.or(w),
        };
        match (self.registered, want) {
            (None, Some(i)) => registry.register(&mut self.stream, self.token, i)?,
            (Some(old), Some(i)) if old != i => registry.reregister(&mut self.stream, self.token, i)?,
            (Some(_), None) => registry.deregister(&mut self.stream)?,
            _ => {}
        }
        self.registered = want;
        Ok(())
    }

    /// The interest currently registered (`None`: not registered).
    pub fn interest(&self) -> Option<Interest> {
        self.registered
    }

    /// Whether a connect is still in progress.
    pub fn is_connecting(&self) -> bool {
        self.connecting
    }

    /// Whether the peer has closed its sending side.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Bytes read and written so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.bytes_in, self.bytes_out)
    }

    /// The remote address (the connect target while connecting).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Half-closes: no more output from us (the peer reads end of stream after what was
    /// sent); input still arrives until the peer closes too.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Deregisters and shuts the socket down; queued output is dropped.
    pub fn close(mut self, registry: &Registry) {
        if self.registered.is_some() {
            let _ = registry.deregister(&mut self.stream);
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn new(stream: TcpStream, token: Token, limits: Limits) -> Self {
        Self {
            stream,
            remote: None,
            token,
            limits: Limits { read_limit: limits.read_limit.max(1), write_cap: limits.write_cap.max(1) },
            connecting: false,
            // Optimistic: an established socket is tried at once; `WouldBlock` clears these and
            // the next event sets them again. Saves a loop turn before the first write.
            readable: true,
            writable: true,
            eof: false,
            rbuf: BytesMut::new(),
            out: VecDeque::new(),
            queued: 0,
            registered: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// One `writev` of the memory segments at the front, up to the first file range.
    fn write_memory(&mut self, mut left: usize) -> io::Result<usize> {
        let mut slices = Vec::with_capacity(self.out.len().min(MAX_IOVECS));
        for seg in self.out.iter().take(MAX_IOVECS) {
            let Segment::Mem(seg) = seg else { break };
            if left == 0 {
                break;
            }
            let n = seg.len().min(left);
            slices.push(IoSlice::new(&seg[..n]));
            left -= n;
        }
        self.stream.write_vectored(&slices)
    }

    fn consume_out(&mut self, mut n: usize) {
        self.bytes_out += n as u64;
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else { break };
            if n >= front.len() {
                n -= front.len();
                self.out.pop_front();
            } else {
                match front {
                    Segment::Mem(b) => b.advance(n),
                    Segment::File(r) => {
                        r.offset += n as u64;
                        r.len -= n;
                    }
                }
                n = 0;
            }
        }
    }

    fn addr_for_errors(&self) -> String {
        self.remote.map_or_else(|| "an unknown peer".to_owned(), |a| a.to_string())
    }

    fn io_error(&self, source: io::Error) -> ConnError {
        ConnError::Io { peer: self.addr_for_errors(), source }
    }
}

#[cfg(test)]
mod tests;
