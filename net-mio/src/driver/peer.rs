//! The peer node: the core `Peer` with a disk store and in-order output.
//!
//! Output to a regular file (`-o FILE`): verified chunks are written at their offsets
//! straight into `FILE.part` (`Backing::Output`), so `Deliver` events only advance the count,
//! and `FILE.part` is renamed to `FILE` once every chunk is verified: a partial download never
//! passes for a complete one, and `FILE` itself (perhaps the very file a seed is serving, for
//! a `get` run in its directory) is not touched until then. A `FILE.part` left by an
//! interrupted run is resumed: the store offers its whole chunks as leftovers, the machine
//! keeps those that hash right against the manifest (`PeerEvent::Resumed`) and fetches the
//! rest. A live stream never resumes (it goes to `FILE` through a sink, from the live edge).
//! Output to stdout or a FIFO: chunks are cached in an anonymous sparse file and each
//! `Deliver` payload is pushed to the [`Sink`]. While the sink is full the node stops
//! draining the machine's events (delivery is lazy in the machine: one chunk per poll), so
//! memory stays at the sink's cap plus one chunk; the download itself goes on to disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::event::Event;
use mio::{Registry, Token};
use pdtp_core::node::NodeEvent;
use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
use pdtp_core::signing::SeedKey;
use pdtp_core::wire::codec::DecodeError;
use pdtp_core::wire::{ErrorCode, Notice};
use pdtp_core::{ChunkStore, ConnId, ContentId, Endpoint, Message, Payload, PeerId, Span, Time, Transmit};
use rand_core::SeedableRng;

use super::{Cx, Hosted, Status};
use crate::secure::LinkKey;
use crate::serve::{MediaServer, MediaSource};
use crate::sink::{OutputKind, Sink};
use crate::storage::{Backing, PeerStore};

/// The sink's queue cap: a few chunks of slack for a media player.
const SINK_CAP: usize = 4 << 20;
/// Bytes delivered per turn at most, so a fast sink cannot starve the sockets.
const DELIVER_PER_TURN: u64 = 16 << 20;
/// How often a FIFO without a reader is retried.
const FIFO_RETRY: Duration = Duration::from_millis(100);

/// How a peer node is set up.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// Our id (unique per tracker).
    pub peer_id: PeerId,
    /// Where the tracker listens.
    pub tracker: Endpoint,
    /// The content path to download (no leading `/`).
    pub path: String,
    /// Where the bytes go.
    pub output: OutputKind,
    /// The port we accept peer links on (the listener is bound by the caller).
    pub listen_port: Option<u16>,
    /// Directory for the anonymous cache file (stream outputs).
    pub cache_dir: PathBuf,
    /// Fault injection: corrupt every chunk we serve (tests only).
    pub corrupt_uploads: bool,
    /// Chunks that may fail verification before the download gives up; `None`: the
    /// number of chunks plus 8.
    pub max_rejects: Option<u64>,
    /// A transfer under way (our `Get` sent, or a `Put` accepted) whose chunk has not
    /// arrived this long after it started is abandoned: the tracker hears `Completed` with
    /// no hash and schedules the chunk again, elsewhere if the giver keeps failing. `None`:
    /// the core's default (`PeerConfig::transfer_timeout`, 120 s).
    pub transfer_timeout: Option<Duration>,
    /// A transfer under way whose link has brought no byte for this long is abandoned as
    /// above (`PeerConfig::progress_timeout`): a giver that accepts and sends nothing, or
    /// stops, is left within seconds. `None`: only `transfer_timeout`.
    pub progress_timeout: Option<Duration>,
    /// Live: the player's buffer. A chunk still missing this long after its append reached
    /// us is skipped (`PeerConfig::playback_deadline`); `None`: wait for every chunk.
    pub playback_deadline: Option<Duration>,
    /// Keep each in-order delivery's byte offset and time ([`PeerNode::deliveries`]), for
    /// `get --report` on a live stream.
    pub record_deliveries: bool,
    /// When the tracker has no content at the path (a live stream not started yet), ask
    /// again every [`ASK_AGAIN`] for this long before failing; `None`: fail at once.
    pub wait_for_content: Option<Duration>,
    /// The seed key the URL pinned (`#seed=`): a manifest not signed by it is refused.
    pub seed_key: Option<SeedKey>,
    /// The link key the tracker must prove (`#key=`, or remembered from first use); `None`:
    /// any, learned from the handshake ([`crate::driver::Runtime::tracker_key`]).
    pub tracker_key: Option<LinkKey>,
    /// A tracker that went away after welcoming us: the download carries on and reconnects
    /// for this long, then fails (`None`: for ever). A complete download seeds on regardless.
    pub tracker_patience: Option<Duration>,
    /// Serve the content over HTTP on this address while it downloads (`get --serve`).
    pub serve: Option<SocketAddr>,
    /// Seed for the machine's generator.
    pub rng_seed: u64,
}

/// A hosted peer.
pub struct PeerNode {
    peer: Peer<PeerStore>,
    /// A file output's `.part` and final names, renamed when the download completes.
    finish: Option<(PathBuf, PathBuf)>,
    tracker: Endpoint,
    path: String,
    sink: Option<Sink>,
    sink_token: Option<Token>,
    /// `get --serve`: the HTTP server, its first token, and the playback position the
    /// machine was last told.
    server: Option<MediaServer>,
    server_token: Option<Token>,
    told_position: Option<u64>,
    to_stdout: bool,
    content: Option<ContentId>,
    chunks: u32,
    fifo_retry_at: Option<Instant>,
    /// Delivery stopped at its per-turn budget with more ready.
    more: bool,
    max_rejects: Option<u64>,
    welcomed: bool,
    live: bool,
    /// `--serve`'s entity tag for a file (none before the manifest, or for a live stream).
    etag: Option<String>,
    /// The seed key that signed the manifest, once it came signed (`signer`).
    signer: Option<pdtp_core::signing::SeedKey>,
    tracker_lost: bool,
    complete: bool,
    delivered: u64,
    verified_bytes: u64,
    resumed_bytes: u64,
    rejected: u64,
    failure: Option<String>,
    /// In-order deliveries (byte offset, unix seconds) when recording them.
    deliveries: Option<Vec<(u64, f64)>>,
    /// How long to keep asking for a path the tracker does not know yet.
    wait_for_content: Option<Duration>,
    tracker_patience: Option<Duration>,
    /// Since when the tracker has been away (reset by its welcome).
    tracker_down_since: Option<Instant>,
    /// Since when the tracker has said it has no such content, and when to ask again.
    unknown_since: Option<Instant>,
    ask_again_at: Option<Instant>,
    tracker_key: Option<LinkKey>,
}

/// How often a `get` waiting for its content to be published asks the tracker again.
pub const ASK_AGAIN: Duration = Duration::from_secs(1);

impl PeerNode {
    /// A peer that will connect to its tracker and ask for `opts.path`.
    pub fn new(now: Time, opts: PeerOptions) -> Result<Self, String> {
        let mut store = PeerStore::new(&opts.cache_dir);
        let mut finish = None;
        let sink = match &opts.output {
            OutputKind::File(p) => {
                if p.is_dir() {
                    return Err(format!("{}: is a directory (name the output file)", p.display()));
                }
                let part = part_path(p);
                store.plan(&opts.path, Backing::Output(part.clone()));
                finish = Some((part, p.clone()));
                None
            }
            other => {
                store.plan(&opts.path, Backing::Cache(opts.cache_dir.clone()));
                Some(Sink::open(other, SINK_CAP).map_err(|e| e.to_string())?)
            }
        };
        let server = match opts.serve {
            Some(addr) => Some(
                MediaServer::bind(addr, &opts.path)
                    .map_err(|e| format!("--serve {addr}: cannot listen there: {e}"))?,
            ),
            None => None,
        };
        let mut cfg = PeerConfig::new(opts.peer_id, opts.tracker.clone());
        cfg.listen_port = opts.listen_port;
        cfg.corrupt_uploads = opts.corrupt_uploads;
        let span = |d: Duration| Span::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        if let Some(t) = opts.transfer_timeout {
            cfg.transfer_timeout = span(t);
        }
        cfg.progress_timeout = opts.progress_timeout.map(span);
        cfg.playback_deadline = opts.playback_deadline.map(span);
        cfg.seed_key = opts.seed_key;
        // A file output holds its chunks in place: only a stream output needs their bytes.
        cfg.deliver_payloads = sink.is_some();
        let rng = pdtp_core::Rng::seed_from_u64(opts.rng_seed);
        let mut peer = Peer::new(now, cfg, store, rng);
        peer.get(now, &opts.path);
        Ok(Self {
            peer,
            finish,
            tracker: opts.tracker,
            path: opts.path,
            sink,
            sink_token: None,
            server,
            server_token: None,
            told_position: None,
            to_stdout: matches!(opts.output, OutputKind::Stdout),
            content: None,
            chunks: 0,
            fifo_retry_at: None,
            more: false,
            max_rejects: opts.max_rejects,
            welcomed: false,
            live: false,
            etag: None,
            signer: None,
            tracker_lost: false,
            complete: false,
            delivered: 0,
            verified_bytes: 0,
            resumed_bytes: 0,
            rejected: 0,
            failure: None,
            deliveries: opts.record_deliveries.then(Vec::new),
            wait_for_content: opts.wait_for_content,
            tracker_patience: opts.tracker_patience,
            tracker_down_since: None,
            unknown_since: None,
            ask_again_at: None,
            tracker_key: opts.tracker_key,
        })
    }

    /// The machine (read-only).
    pub fn peer(&self) -> &Peer<PeerStore> {
        &self.peer
    }

    /// Where `--serve` listens, if it does.
    pub fn serve_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// HTTP responses sent in full by `--serve`.
    pub fn served(&self) -> u64 {
        self.server.as_ref().map_or(0, MediaServer::served)
    }

    /// Chunks verified and chunks in the content (`(0, 0)` until the manifest came).
    pub fn progress(&self) -> (u32, u32) {
        self.content.and_then(|c| self.peer.progress(c)).unwrap_or((0, 0))
    }

    /// Bytes delivered in order so far (to the sink, or in place in the output file).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Bytes received from other nodes and verified so far (any order; resumed chunks are
    /// [`resumed_bytes`](Self::resumed_bytes)).
    pub fn verified_bytes(&self) -> u64 {
        self.verified_bytes
    }

    /// Bytes found already good in the output's `FILE.part` (an interrupted earlier run), so
    /// not fetched: the chunks that hashed right against the manifest.
    pub fn resumed_bytes(&self) -> u64 {
        self.resumed_bytes
    }

    /// In-order deliveries so far, (byte offset, unix seconds), if they are recorded
    /// (`PeerOptions::record_deliveries`): when a player could have played each chunk.
    pub fn deliveries(&self) -> Option<&[(u64, f64)]> {
        self.deliveries.as_deref()
    }

    /// Chunks that failed verification.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The seed key that signed the manifest (checked), once it came signed.
    pub fn signer(&self) -> Option<pdtp_core::signing::SeedKey> {
        self.signer
    }

    /// Whether the content is a live stream (known once its manifest came).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the tracker connection was lost (after a complete download this only means
    /// no more orders will come: the node has nobody left to serve).
    pub fn tracker_lost(&self) -> bool {
        self.tracker_lost
    }

    /// Closes a stream output (stdout or a FIFO) once everything was delivered, so its reader
    /// sees the end while the node stays on to serve other peers. Stdout is pointed at
    /// `/dev/null` (fd 1 itself must close for a pipe's reader to see the end; the sink
    /// holds only a duplicate). A file output needs nothing.
    pub fn close_output(&mut self, registry: &Registry) -> std::io::Result<()> {
        let Some(mut sink) = self.sink.take() else { return Ok(()) };
        if let Some(token) = self.sink_token {
            // Nothing is queued once the download is done: this deregisters the pipe.
            sink.update_interest(registry, token)?;
        }
        drop(sink);
        if self.to_stdout {
            crate::sink::close_stdout()?;
        }
        Ok(())
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() && !self.complete {
            tracing::debug!(%why, "download failed");
            self.failure = Some(why);
        }
    }

    fn on_event(&mut self, cx: &Cx<'_>, ev: PeerEvent) {
        match ev {
            PeerEvent::Welcomed => {
                self.tracker_down_since = None;
                if self.welcomed {
                    tracing::warn!(tracker = %self.tracker, "the tracker is back; announcing again");
                }
                self.welcomed = true;
            }
            PeerEvent::ManifestRefused { reason, .. } => self.fail(reason),
            PeerEvent::ManifestReceived { content, num_chunks, live, signer } => {
                self.signer = signer;
                match signer {
                    Some(key) => {
                        tracing::info!(%key, "the manifest is signed by the seed (pin it with #seed=KEY)")
                    }
                    None => tracing::info!("the manifest is not signed"),
                }
                self.content = Some(content);
                self.chunks = num_chunks;
                self.live = live;
                // A file's tag, from its manifest's root once (every HTTP answer carries it):
                // 128 bits, as unique as a tag needs and short enough to read.
                self.etag =
                    self.peer.content_root(content).map(|root| format!("\"{}\"", &root.to_string()[..32]));
                // A stream output plays from the start: the tracker is told so (a playback
                // position, as for --serve) and schedules its chunks in order, so a player
                // starts at once and chunks arrive about in order, to go out from memory
                // rather than be read back from the cache file (docs/runtime.md §4).
                if !live && self.sink.is_some() {
                    self.peer.seek(cx.time, content, 0);
                }
                // A live stream has no size to write in place: it goes to the file in order,
                // under its own name (a recording a player may follow as it grows).
                if live
                    && self.sink.is_none()
                    && let Some((_, out)) = self.finish.take()
                {
                    match Sink::file(&out, SINK_CAP) {
                        Ok(sink) => {
                            self.sink = Some(sink);
                            self.peer.set_deliver_payloads(true);
                        }
                        Err(e) => self.fail(e.to_string()),
                    }
                }
            }
            PeerEvent::Withdrawn { detail } if !self.complete => {
                self.fail(format!("{detail}; run get again to fetch the new version (what verified is kept)"))
            }
            PeerEvent::UnknownUrl { path } => {
                let since = *self.unknown_since.get_or_insert(cx.now);
                match self.wait_for_content {
                    Some(wait) if cx.now < since + wait => {
                        if since == cx.now {
                            tracing::info!(%path, ?wait, "the tracker has no such content yet; asking again every second");
                        }
                        self.ask_again_at = Some(cx.now + ASK_AGAIN);
                    }
                    Some(wait) => self.fail(format!(
                        "the tracker at {} has no file '{path}' (asked for {}s; --wait to change)",
                        self.tracker,
                        wait.as_secs_f64()
                    )),
                    None => self.fail(format!("the tracker at {} has no file '{path}'", self.tracker)),
                }
            }
            PeerEvent::Resumed { checked, kept, bytes, .. } => {
                self.resumed_bytes += bytes;
                let part = self.finish.as_ref().map(|(part, _)| part.display().to_string());
                tracing::info!(
                    part = part.as_deref().unwrap_or("the output"),
                    checked,
                    kept,
                    "resuming: {kept} of {} chunks already verified",
                    self.chunks
                );
            }
            PeerEvent::ChunkVerified { bytes, .. } => self.verified_bytes += u64::from(bytes),
            PeerEvent::ChunkRejected { from, chunk, .. } => {
                self.rejected += 1;
                tracing::warn!(%from, chunk, "a chunk failed verification; fetching it again");
                let max = self.max_rejects.unwrap_or(u64::from(self.chunks) + 8);
                if self.rejected > max {
                    self.fail(format!(
                        "{} chunks of '{}' failed verification; giving up (the sources are corrupt)",
                        self.rejected, self.path
                    ));
                }
            }
            PeerEvent::Deliver { payload, offset, .. } => {
                if let Some(log) = self.deliveries.as_mut() {
                    log.push((offset, crate::clock::unix_seconds()));
                }
                self.delivered += u64::from(payload.len());
                if self.live
                    && let (Some(server), Payload::Real(bytes)) = (self.server.as_mut(), &payload)
                {
                    server.push_live(cx.registry, cx.now, bytes);
                }
                if let (Some(sink), Payload::Real(bytes)) = (self.sink.as_mut(), payload)
                    && let Err(e) = sink.push(bytes)
                {
                    self.fail(e.to_string());
                }
            }
            PeerEvent::DownloadComplete { .. } => {
                if let Some((part, out)) = self.finish.take() {
                    if let Err(e) = std::fs::rename(&part, &out) {
                        let why = format!("renaming {} to {}: {e}", part.display(), out.display());
                        self.fail(why);
                        return;
                    }
                }
                self.complete = true;
                // The end of a live stream ends its HTTP bodies.
                if self.live
                    && let Some(mut server) = self.server.take()
                {
                    server.end_live(cx.registry, cx.now, &mut Source(self));
                    self.server = Some(server);
                }
            }
            PeerEvent::Node(NodeEvent::TrackerDown { notice, retry_in }) => {
                let why = notice.map_or_else(|| "the connection was closed".to_owned(), |n| n.detail);
                tracing::warn!(tracker = %self.tracker, %why, ?retry_in, "lost the tracker; carrying on and reconnecting");
                let since = *self.tracker_down_since.get_or_insert(cx.now);
                if let Some(patience) = self.tracker_patience
                    && cx.now.saturating_duration_since(since) >= patience
                {
                    self.fail(format!(
                        "lost the tracker at {} {}s ago and it has not come back (--tracker-wait)",
                        self.tracker,
                        cx.now.saturating_duration_since(since).as_secs()
                    ));
                }
            }
            PeerEvent::TrackerLost { notice } => {
                self.tracker_lost = true;
                if let Some(n) = notice.filter(|n| n.code == ErrorCode::Overloaded) {
                    self.fail(format!("the tracker at {} is overloaded: {}", self.tracker, n.detail));
                } else if !self.welcomed {
                    let why = cx.connect_error.unwrap_or("the connection was closed");
                    self.fail(format!("cannot reach the tracker at {}: {why}", self.tracker));
                } else {
                    self.fail(format!("lost the connection to the tracker at {}", self.tracker));
                }
            }
            PeerEvent::Node(NodeEvent::Problem(n)) => {
                tracing::debug!(code = ?n.code, detail = %n.detail, "problem");
                // Our own storage failed (output not writable, disk full): stop, leaving what
                // was written intact, instead of fetching the same chunks forever.
                if n.code == ErrorCode::Unexpected && n.detail.contains("storage: ") {
                    self.fail(n.detail);
                }
            }
            PeerEvent::Node(NodeEvent::TransferFailed { token, reason }) => {
                tracing::debug!(?token, %reason, "transfer failed");
            }
            _ => {}
        }
    }

    fn flush_sink(&mut self, registry: &Registry, now: Instant) {
        let Some(sink) = self.sink.as_mut() else { return };
        if let Err(e) = sink.flush() {
            let why = e.to_string();
            self.complete = false;
            self.failure.get_or_insert(why);
            return;
        }
        self.fifo_retry_at = sink.awaiting_reader().then(|| self.fifo_retry_at.unwrap_or(now + FIFO_RETRY));
        if let Some(t) = self.sink_token
            && let Err(e) = sink.update_interest(registry, t)
        {
            self.failure.get_or_insert(format!("{}: {e}", sink.name()));
        }
    }
}

impl PeerNode {
    /// Tells the machine where a `--serve` client waits, so those chunks come first.
    fn follow_seek(&mut self, cx: &Cx<'_>) {
        let Some(pos) = self.server.as_mut().and_then(MediaServer::take_seek) else { return };
        let Some(content) = self.content else { return };
        if self.told_position != Some(pos) {
            self.told_position = Some(pos);
            tracing::debug!(pos, "serve: a client waits here; fetching from it first");
            self.peer.seek(cx.time, content, pos);
        }
    }
}

/// The peer node as the HTTP server's source: the manifest's size and verified chunks.
struct Source<'a>(&'a mut PeerNode);

impl MediaSource for Source<'_> {
    fn size(&self) -> Option<u64> {
        let content = self.0.content?;
        self.0.peer.content_size(content)
    }

    fn read(&mut self, offset: u64, max: u64) -> Result<Option<Bytes>, String> {
        let Some(content) = self.0.content else { return Ok(None) };
        let Some((chunk, start)) = self.0.peer.chunk_at(content, offset) else { return Ok(None) };
        // Only bytes whose chunk verified against the manifest, never a leftover not checked.
        if !self.0.peer.holds(content, chunk) {
            return Ok(None);
        }
        let payload = self.0.peer.store_mut().read(content, chunk).map_err(|e| e.to_string())?;
        let Payload::Real(bytes) = payload else { return Err("a virtual payload cannot be served".into()) };
        let from = usize::try_from(offset - start).unwrap_or(usize::MAX).min(bytes.len());
        let to = from.saturating_add(usize::try_from(max).unwrap_or(usize::MAX)).min(bytes.len());
        Ok(Some(bytes.slice(from..to)))
    }

    fn etag(&self) -> Option<String> {
        self.0.etag.clone()
    }

    fn live(&self) -> bool {
        self.0.live
    }
}

/// `FILE.part` beside `FILE`: where a file output grows until it is complete.
pub fn part_path(out: &std::path::Path) -> PathBuf {
    let mut name = out.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".part");
    out.with_file_name(name)
}

impl Hosted for PeerNode {
    fn accept(&mut self, now: Time, _remote_host: String) -> Result<ConnId, Notice> {
        self.peer.accept(now)
    }

    fn tracker_pin(&self) -> Option<LinkKey> {
        self.tracker_key
    }

    fn tracker(&self) -> Option<&Endpoint> {
        Some(&self.tracker)
    }

    fn peer_link_key(&self, id: &[u8; 16]) -> Option<pdtp_core::wire::LinkSecret> {
        self.peer.link_key(id)
    }
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        self.peer.handle_message(now, conn, msg);
    }
    fn handle_progress(&mut self, now: Time, conn: ConnId) {
        self.peer.handle_progress(now, conn);
    }
    fn handle_malformed(&mut self, _now: Time, _conn: ConnId, _err: &DecodeError) -> bool {
        false
    }
    fn handle_connected(&mut self, now: Time, conn: ConnId) {
        self.peer.handle_connected(now, conn);
    }
    fn handle_closed(&mut self, now: Time, conn: ConnId) {
        self.peer.handle_closed(now, conn);
    }
    fn handle_timeout(&mut self, now: Time) {
        self.peer.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.peer.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.peer.poll_timeout()
    }
    fn register(&mut self, registry: &Registry, base: Token) -> std::io::Result<()> {
        // The sink's token first (if any), then the HTTP server's.
        let mut next = base.0;
        if self.sink.is_some() {
            self.sink_token = Some(Token(next));
            next += 1;
        }
        if let Some(s) = self.server.as_mut() {
            self.server_token = Some(Token(next));
            s.register(registry, Token(next))?;
        }
        Ok(())
    }
    fn extra_tokens(&self) -> usize {
        usize::from(self.sink.is_some()) + self.server.as_ref().map_or(0, MediaServer::tokens)
    }
    fn extra_event(&mut self, cx: &mut Cx<'_>, event: &Event) {
        if let Some(mut server) = self.server.take() {
            if server.owns(event.token()) {
                server.handle_event(cx.registry, event, cx.now, &mut Source(self));
                self.server = Some(server);
                return self.follow_seek(cx);
            }
            self.server = Some(server);
        }
        self.flush_sink(cx.registry, cx.now);
    }
    fn extra_timeout(&self) -> Option<Instant> {
        // A FIFO waiting for its reader is retried on a timer (it cannot be polled), and so
        // is asking for content the tracker does not have yet.
        let http = self.server.as_ref().and_then(MediaServer::poll_timeout);
        [self.fifo_retry_at, self.ask_again_at, http].into_iter().flatten().min()
    }
    fn extra_timer(&mut self, cx: &mut Cx<'_>) {
        if let Some(s) = self.server.as_mut() {
            s.handle_timeout(cx.registry, cx.now);
        }
        if self.ask_again_at.is_some_and(|t| t <= cx.now) {
            self.ask_again_at = None;
            self.peer.get(cx.time, &self.path);
        }
        if self.fifo_retry_at.is_some_and(|t| t <= cx.now) {
            self.fifo_retry_at = None;
            self.flush_sink(cx.registry, cx.now);
        }
    }
    fn after(&mut self, cx: &mut Cx<'_>) {
        // Deliver while the sink takes it: push until it is full, flush, go on while the flush
        // made room. A pipe that is full stops this until its writable event; a file never
        // does, so a turn delivers at most DELIVER_PER_TURN and asks for another at once.
        let start = self.delivered;
        self.more = false;
        loop {
            let mut drained = false;
            while self.sink.as_ref().is_none_or(Sink::has_room) {
                match self.peer.poll_event() {
                    Some(ev) => self.on_event(cx, ev),
                    None => {
                        drained = true;
                        break;
                    }
                }
                if self.delivered - start >= DELIVER_PER_TURN {
                    break;
                }
            }
            self.flush_sink(cx.registry, cx.now);
            if drained || self.failure.is_some() || self.sink.as_ref().is_some_and(|s| !s.has_room()) {
                break;
            }
            if self.delivered - start >= DELIVER_PER_TURN {
                self.more = true;
                break;
            }
        }
        // Chunks verified this turn let waiting HTTP clients go on.
        if let Some(mut server) = self.server.take() {
            server.pump(cx.registry, cx.now, &mut Source(self));
            self.server = Some(server);
            self.follow_seek(cx);
        }
    }
    fn has_work(&self) -> bool {
        self.more
    }
    fn status(&self) -> Status {
        if let Some(f) = &self.failure {
            return Status::Failed(f.clone());
        }
        let flushed = self.sink.as_ref().is_none_or(|s| s.queued() == 0 && !s.awaiting_reader());
        if self.complete && flushed { Status::Done } else { Status::Running }
    }
}
