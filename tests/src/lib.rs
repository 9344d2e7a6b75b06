//! Workspace integration tests live in `tests/tests/`; this library holds what they share.
//!
//! These tests run the real runtime on real sockets, so wall time is allowed here.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

/// `len` pseudo-random bytes from `seed` (xorshift64*; reproducible, not cryptographic).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` random bytes to `dir/name` and returns them.
pub fn write_random_file(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = random_bytes(len, seed);
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(&path, &data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    data
}

/// The seed key every test tracker uses.
pub const KEY: &str = "integration-test-seed-key";

/// Runs `rt` in short turns until `done` (which may poll sockets the loop does not know
/// about) returns true or `limit` passes; returns whether `done` held.
pub fn run_polling(
    rt: &mut pdtp_net_mio::driver::Runtime,
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if done() {
            return true;
        }
        rt.turn(Some(std::time::Duration::from_millis(5))).unwrap_or_else(|e| panic!("event loop: {e}"));
    }
    done()
}

/// Runs the swarm's loop until `child` exits and returns its status; `None` if it was still
/// running after `limit` (it is then killed and reaped).
pub fn wait_polling(
    rt: &mut pdtp_net_mio::driver::Runtime,
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let mut status = None;
    let exited = run_polling(rt, limit, || {
        status = child.try_wait().unwrap_or(None);
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Waits for `child` to exit, without a loop to run, for at most `limit`; panics naming
/// `what` if it does not (the child is killed when the caller drops it).
pub fn wait_child(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        assert!(std::time::Instant::now() < end, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `bin` (a `pdtp-node`) as a command with a configuration directory of its own
/// (`XDG_CONFIG_HOME`): a `get` remembers the seed key of each URL it fetches there (trust
/// on first use), so tests neither write the runner's `~/.config/pdtp/known_seeds` nor
/// see each other's keys on a reused port. One fresh directory per command, under
/// `$TMPDIR/pdtp-tests-config-<pid>/`.
pub fn node_command(bin: &str) -> std::process::Command {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("pdtp-tests-config-{}", std::process::id())).join(n.to_string());
    let mut c = std::process::Command::new(bin);
    c.env("XDG_CONFIG_HOME", dir);
    c
}

/// A node played by hand over a tracker's encrypted link, for tests: the Noise handshake
/// and the records as the runtime does them, on a non-blocking socket (a test that runs the
/// tracker in its own loop calls [`TrackerLink::pump`] between turns).
pub struct TrackerLink {
    /// The socket (to write bytes that bypass the encryption).
    pub stream: std::net::TcpStream,
    secure: pdtp_net_mio::secure::SecureLink,
    wire: bytes::BytesMut,
    decoder: pdtp_core::wire::codec::Decoder,
    closed: bool,
}

impl TrackerLink {
    /// Connects to the tracker at `addr` and sends the handshake's first message; `pin` (if
    /// given) is the key the tracker must prove. What is sent before the tracker answers
    /// goes out once it has.
    pub fn connect(addr: std::net::SocketAddr, pin: Option<pdtp_net_mio::secure::LinkKey>) -> Self {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let (secure, first) =
            pdtp_net_mio::secure::SecureLink::initiator(pin).unwrap_or_else(|e| panic!("handshake: {e}"));
        stream.write_all(&first).unwrap_or_else(|e| panic!("handshake: {e}"));
        stream.set_nonblocking(true).unwrap_or_else(|e| panic!("non-blocking: {e}"));
        let decoder = pdtp_core::wire::codec::Decoder::new(pdtp_core::wire::codec::Limits::DEFAULT);
        Self { stream, secure, wire: bytes::BytesMut::new(), decoder, closed: false }
    }

    /// Seals and sends `msg` (held until the handshake is done).
    pub fn send(&mut self, msg: &pdtp_core::Message) {
        let mut frame = bytes::BytesMut::new();
        pdtp_core::wire::codec::encode(msg, &mut frame).unwrap_or_else(|e| panic!("encode: {e}"));
        self.send_plain(&frame);
    }

    /// Seals and sends `bytes` as they are (a malformed or partial frame, inside the link).
    pub fn send_plain(&mut self, bytes: &[u8]) {
        let mut out = Vec::new();
        if self.secure.seal(bytes, &mut out).is_err() {
            self.closed = true;
        }
        self.write(out);
    }

    /// Whether the handshake is done.
    pub fn is_open(&self) -> bool {
        self.secure.is_open()
    }

    /// Whether the tracker closed the link (or it failed), as of the last [`TrackerLink::pump`].
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads what has arrived, without waiting, and returns the messages it completed.
    pub fn pump(&mut self) -> Vec<pdtp_core::Message> {
        use std::io::Read as _;
        let mut buf = [0u8; 64 * 1024];
        while !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.wire.extend_from_slice(&buf[..n]);
                    let mut replies = Vec::new();
                    let Self { secure, wire, decoder, .. } = self;
                    if decoder.fill_with(|plain| secure.open(wire, plain, &mut replies)).is_err() {
                        self.closed = true;
                    }
                    self.write(replies);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.closed = true,
            }
        }
        std::iter::from_fn(|| self.decoder.next().ok().flatten()).collect()
    }

    /// Pumps until the handshake is done (the tracker runs elsewhere); panics after `limit`.
    pub fn wait_open(&mut self, limit: std::time::Duration) {
        let end = std::time::Instant::now() + limit;
        while !self.is_open() {
            assert!(!self.closed && std::time::Instant::now() < end, "the tracker's handshake did not come");
            self.pump();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn write(&mut self, out: Vec<bytes::Bytes>) {
        use std::io::Write as _;
        for b in out {
            // Small writes to a socket with room; a closed one shows on the next pump.
            let mut rest = &b[..];
            while !rest.is_empty() {
                match self.stream.write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    Err(_) => {
                        self.closed = true;
                        return;
                    }
                }
            }
        }
    }
}

/// What a [`LyingTaker`] does with each order it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// Holds it and never asks its giver.
    Silent,
    /// Reports it failed the moment it arrives.
    Fails,
    /// Reports it done with a wrong hash, never having fetched it.
    Slanders,
}

/// A taker played by hand over a tracker link that has said `Hello` and `AskInfo`: it
/// answers the manifest with a `Request` for everything and then lies about every order
/// (issue 17's probes).
pub struct LyingTaker {
    pub link: TrackerLink,
    pub lie: Lie,
    /// Orders the tracker gave it.
    pub orders: usize,
}

impl LyingTaker {
    /// Reads what arrived and answers it.
    pub fn pump(&mut self) {
        use pdtp_core::Message;
        for msg in self.link.pump() {
            match msg {
                Message::TellInfo(t) => {
                    self.link.send(&Message::Request(pdtp_core::wire::Interest::all(t.content)))
                }
                Message::Transfer(o) => {
                    self.orders += 1;
                    let hash = match self.lie {
                        Lie::Silent => continue,
                        Lie::Fails => None,
                        Lie::Slanders => Some(pdtp_core::Digest::of(b"not what was sent")),
                    };
                    let done = pdtp_core::wire::Completed { token: o.token, hash, copy_us: 1000 };
                    self.link.send(&Message::Completed(done));
                }
                _ => {}
            }
        }
    }
}

/// A giver played by hand over a tracker link whose `Hello` named the port of
/// [`MuteGiver::listener`]: it claims every chunk of the content it is told of, accepts the
/// peer links and `Get`s that come, and never sends a byte of data (issue 17's probes).
pub struct MuteGiver {
    pub link: TrackerLink,
    listener: std::net::TcpListener,
    links: Vec<PeerLinkIn>,
    /// The secrets of the orders the tracker gave it (peer links are sealed with them).
    secrets: Vec<pdtp_core::wire::LinkSecret>,
    /// The content the tracker told it of.
    pub content: Option<pdtp_core::ContentId>,
    /// The `Get`s it received (and left unanswered).
    pub gets: Vec<pdtp_core::wire::PeerRequest>,
}

impl MuteGiver {
    /// A non-blocking listener on 127.0.0.1 and its port, for the giver's `Hello`.
    pub fn listener() -> (std::net::TcpListener, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("non-blocking: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("local_addr: {e}"));
        (listener, port)
    }

    /// The giver on `link` (its `Hello` and `AskInfo` sent), accepting on `listener`.
    pub fn new(link: TrackerLink, listener: std::net::TcpListener) -> Self {
        Self { link, listener, links: Vec::new(), secrets: Vec::new(), content: None, gets: Vec::new() }
    }

    /// Reads whatever arrived; answers the manifest with a `Provide` of everything; records
    /// `Get`s on peer links and answers nothing.
    pub fn pump(&mut self) {
        use pdtp_core::Message;
        for msg in self.link.pump() {
            match msg {
                Message::TellInfo(t) => {
                    self.content = Some(t.content);
                    self.link.send(&Message::Provide(pdtp_core::wire::Interest::all(t.content)));
                }
                Message::Transfer(o) => self.secrets.push(o.key),
                _ => {}
            }
        }
        while let Ok((s, _)) = self.listener.accept() {
            self.links.push(PeerLinkIn::accept(s));
        }
        for link in &mut self.links {
            for msg in link.pump(&self.secrets) {
                if let Message::Get(req) = msg {
                    self.gets.push(req);
                }
            }
        }
    }
}

/// A peer link of a node played by hand, either end: accepted (the link id read first, the
/// secret found among the orders the test was given) or opened with an order's secret; then
/// frames sealed and opened as the runtime does (a non-blocking socket; [`PeerLinkIn::pump`]
/// between turns).
pub struct PeerLinkIn {
    stream: std::net::TcpStream,
    secure: pdtp_net_mio::secure::SecureLink,
    wire: bytes::BytesMut,
    decoder: pdtp_core::wire::codec::Decoder,
}

impl PeerLinkIn {
    /// Wraps an accepted connection (made non-blocking).
    pub fn accept(stream: std::net::TcpStream) -> Self {
        stream.set_nonblocking(true).unwrap_or_else(|e| panic!("non-blocking: {e}"));
        Self {
            stream,
            secure: pdtp_net_mio::secure::SecureLink::peer_accepting(),
            wire: bytes::BytesMut::new(),
            decoder: pdtp_core::wire::codec::Decoder::new(pdtp_core::wire::codec::Limits::DEFAULT),
        }
    }

    /// Connects to `addr` as the connecting end of a transfer whose order carried `secret`.
    pub fn connect(addr: std::net::SocketAddr, secret: &pdtp_core::wire::LinkSecret) -> Self {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let (secure, id) = pdtp_net_mio::secure::SecureLink::peer_connecting(secret);
        stream.write_all(&id).unwrap_or_else(|e| panic!("link id: {e}"));
        stream.set_nonblocking(true).unwrap_or_else(|e| panic!("non-blocking: {e}"));
        let decoder = pdtp_core::wire::codec::Decoder::new(pdtp_core::wire::codec::Limits::DEFAULT);
        Self { stream, secure, wire: bytes::BytesMut::new(), decoder }
    }

    /// Seals and sends `msg`; `false` if the other end has closed.
    pub fn send(&mut self, msg: &pdtp_core::Message) -> bool {
        use std::io::Write as _;
        let mut frame = bytes::BytesMut::new();
        pdtp_core::wire::codec::encode(msg, &mut frame).unwrap_or_else(|e| panic!("encode: {e}"));
        let mut out = Vec::new();
        self.secure.seal(&frame, &mut out).unwrap_or_else(|e| panic!("seal: {e}"));
        out.iter().all(|b| self.stream.write_all(b).is_ok())
    }

    /// Reads what arrived and returns the messages it completed, once one of `secrets` (the
    /// orders' keys the test has seen) is the link's.
    pub fn pump(&mut self, secrets: &[pdtp_core::wire::LinkSecret]) -> Vec<pdtp_core::Message> {
        use std::io::Read as _;
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = self.stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.wire.extend_from_slice(&buf[..n]);
        }
        if let Some(id) = self.secure.wanted_key(&self.wire)
            && let Some(secret) = secrets.iter().find(|s| s.id() == id)
        {
            let _ = self.secure.accept_key(&mut self.wire, secret, &mut Vec::new());
        }
        let Self { secure, wire, decoder, .. } = self;
        if decoder.fill_with(|plain| secure.open(wire, plain, &mut Vec::new())).is_err() {
            return Vec::new();
        }
        std::iter::from_fn(|| self.decoder.next().ok().flatten()).collect()
    }
}

/// Whether a tool a player test needs is installed; outside CI a missing one skips the test
/// with a line saying so (`.ci/run` installs them and sets `PDTP_CI`: there a missing one
/// fails).
pub fn have_tool(name: &str) -> bool {
    // ffmpeg's tools take `-version`; Chromium would start a browser on it.
    let flag = if name == "chromium" { "--version" } else { "-version" };
    let found = std::process::Command::new(name)
        .arg(flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("PDTP_CI").is_none(),
            "{name} is not installed (.ci/run installs it; PDTP_CI is set)"
        );
        eprintln!("skipped: {name} is not installed (apt-get install ffmpeg chromium)");
    }
    found
}
