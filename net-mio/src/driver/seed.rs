//! The seed node: publishes every file under `file_root`, and optionally a live stream read
//! from stdin in `chunk_size` pieces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mio::event::Event;
use mio::unix::pipe::Receiver;
use mio::{Interest, Registry, Token};
use pdtp_core::node::NodeEvent;
use pdtp_core::seed::{Seed, SeedConfig, SeedEvent};
use pdtp_core::signing::SigningKey;
use pdtp_core::wire::codec::DecodeError;
use pdtp_core::wire::{Data, ErrorCode, Notice};
use pdtp_core::{
    ChunkIndex, ChunkStore, ConnId, ContentId, Digest, Endpoint, Manifest, Message, Payload, PeerId,
    StoreError, Time, Transmit,
};
use rand_core::SeedableRng;

use super::{Cx, Hosted, Status};
use crate::conn::FileRange;
use crate::paths::FileRoot;
use crate::secure::LinkKey;
use crate::storage::{PeerStore, SeedStore};

/// How a seed node is set up.
#[derive(Clone, Debug)]
pub struct SeedOptions {
    /// Our id.
    pub peer_id: PeerId,
    /// Where the tracker listens.
    pub tracker: Endpoint,
    /// The seed key shared with the tracker.
    pub key: String,
    /// The directory whose files are published.
    pub file_root: PathBuf,
    /// Bytes per chunk of a published file.
    pub chunk_size: u32,
    /// Bytes per chunk of the live stream.
    pub live_chunk_size: u32,
    /// The port we accept peer links on (the listener is bound by the caller).
    pub listen_port: Option<u16>,
    /// Publish a live stream under this path, read from stdin.
    pub live: Option<String>,
    /// The live stream's nominal bitrate in bit/s, told to viewers in its manifest so their
    /// players can place their join point (0: not known).
    pub live_bitrate_bps: u64,
    /// Send chunk payloads of published files with `sendfile(2)` (the config's `sendfile`).
    pub sendfile: bool,
    /// Signs every manifest and live append, so viewers can pin the seed's key; `None`:
    /// unsigned.
    pub signing_key: Option<SigningKey>,
    /// The uplink stated to the tracker, bits/s on the wire (`SeedConfig::uplink_bps`).
    pub uplink_bps: Option<u64>,
    /// The link key the tracker must prove (`tracker_key` in the config, or remembered from
    /// first use); `None`: any.
    pub tracker_key: Option<LinkKey>,
    /// Seed for the machine's generator.
    pub rng_seed: u64,
}

/// A seed's chunk storage: published files read in place, live chunks in a ring cache.
#[derive(Debug)]
pub struct SeedStores {
    files: SeedStore,
    live: PeerStore,
    live_ids: BTreeSet<ContentId>,
}

/// A hosted seed.
pub struct SeedNode {
    seed: Seed<SeedStores>,
    tracker: Endpoint,
    /// Contents queued for publishing (files, plus the live stream).
    to_publish: usize,
    published: Vec<String>,
    welcomed: bool,
    failure: Option<String>,
    live: Option<Live>,
    /// Chunk payloads of files go out with sendfile(2) (the store's reads are deferred).
    sendfile: bool,
    tracker_key: Option<LinkKey>,
    chunk_size: u32,
    /// When the published files are next checked for changes on disk.
    next_check: Instant,
    /// Changed files to hash and publish again, by path: when next to try (`None`: sent,
    /// awaiting the tracker's `Published`), and the last reason it failed (said once).
    republish: BTreeMap<String, (Option<Instant>, Option<String>)>,
}

/// How often a seed checks its published files for changes while nobody downloads them
/// (a request checks its file at once).
const FILE_CHECK: Duration = Duration::from_secs(2);
/// How long a changed file is left before it is hashed again, and between tries: a file
/// modified less than this ago is not hashed yet, and one that moves while hashed is
/// refused and tried again.
const REPUBLISH_AFTER: Duration = Duration::from_secs(1);

struct Live {
    path: String,
    chunk_size: usize,
    input: Input,
    buf: BytesMut,
    eof: bool,
    /// The end mark went out (after the last chunk, at end of input).
    end_sent: bool,
    token: Option<Token>,
    registered: bool,
    /// A past instant: the deadline that keeps the loop from sleeping while a file is read.
    since: Instant,
}

enum Input {
    /// A pipe or FIFO: non-blocking, polled.
    Pipe(Receiver),
    /// A regular file (`< file`): read a chunk per turn.
    File(File),
}

impl ChunkStore for SeedStores {
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError> {
        if manifest.is_live() {
            self.live_ids.insert(content);
            self.live.open(content, manifest)
        } else {
            self.files.open(content, manifest)
        }
    }
    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError> {
        if self.live_ids.contains(&content) {
            self.live.read(content, chunk)
        } else {
            self.files.read(content, chunk)
        }
    }
    fn write(&mut self, content: ContentId, chunk: ChunkIndex, payload: &Payload) -> Result<(), StoreError> {
        if self.live_ids.contains(&content) {
            self.live.write(content, chunk, payload)
        } else {
            self.files.write(content, chunk, payload)
        }
    }
    fn discard(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<(), StoreError> {
        if self.live_ids.contains(&content) {
            self.live.discard(content, chunk)
        } else {
            self.files.discard(content, chunk)
        }
    }
    fn changed(&mut self, content: ContentId) -> Option<String> {
        // A live stream's chunks are ours (written from stdin); only files change under us.
        if self.live_ids.contains(&content) { None } else { self.files.changed(content) }
    }
}

impl SeedNode {
    /// Hashes every file under the root (one chunk in memory at a time) and queues its
    /// publication; opens stdin for a live stream if asked.
    pub fn new(now: Time, opts: SeedOptions) -> Result<Self, String> {
        let root = FileRoot::new(&opts.file_root).map_err(|e| e.to_string())?;
        let rels = root.list_files().map_err(|e| e.to_string())?;
        let mut files = SeedStore::new(root);
        let mut manifests = Vec::new();
        for rel in rels {
            manifests.push(files.hash(&rel, opts.chunk_size).map_err(|e| e.to_string())?);
        }
        // Peer links are encrypted, so every chunk passes through the cipher: a file range
        // cannot go to the socket with sendfile(2) (`file_payload` is for unsealed links).
        if opts.sendfile {
            tracing::warn!(
                "sendfile: no effect, peer links are encrypted (the bytes pass through the cipher)"
            );
        }
        files.set_deferred(false);
        let stores =
            SeedStores { files, live: PeerStore::new(std::env::temp_dir()), live_ids: BTreeSet::new() };
        let mut cfg = SeedConfig::new(opts.peer_id, opts.tracker.clone(), opts.key.into_bytes());
        cfg.listen_port = opts.listen_port;
        cfg.signing_key = opts.signing_key.clone();
        cfg.uplink_bps = opts.uplink_bps;
        let rng = pdtp_core::Rng::seed_from_u64(opts.rng_seed);
        let mut seed = Seed::new(now, cfg, stores, rng);
        let to_publish = manifests.len() + usize::from(opts.live.is_some());
        for m in manifests {
            tracing::info!(path = %m.path, bytes = m.geometry.size, chunks = m.num_chunks(), "publishing");
            seed.publish(now, m);
        }
        let live = match opts.live {
            Some(path) => {
                crate::paths::check_relative(&path).map_err(|e| format!("--live {path}: {e}"))?;
                seed.start_live(now, &path, opts.live_chunk_size, opts.live_bitrate_bps);
                Some(Live {
                    path,
                    chunk_size: opts.live_chunk_size as usize,
                    input: Input::stdin().map_err(|e| format!("stdin: {e}"))?,
                    buf: BytesMut::new(),
                    eof: false,
                    end_sent: false,
                    token: None,
                    registered: false,
                    since: Instant::now(),
                })
            }
            None => None,
        };
        Ok(Self {
            seed,
            tracker: opts.tracker,
            to_publish,
            published: Vec::new(),
            welcomed: false,
            failure: None,
            live,
            sendfile: opts.sendfile,
            tracker_key: opts.tracker_key,
            chunk_size: opts.chunk_size,
            next_check: Instant::now() + FILE_CHECK,
            republish: BTreeMap::new(),
        })
    }

    /// The machine (read-only).
    pub fn seed(&self) -> &Seed<SeedStores> {
        &self.seed
    }

    /// Paths the tracker accepted, in order.
    pub fn published(&self) -> &[String] {
        &self.published
    }

    /// Whether the tracker accepted everything this seed set out to publish.
    pub fn all_published(&self) -> bool {
        self.published.len() >= self.to_publish
    }

    /// Whether the live input has ended (stdin closed), its last chunk was pushed and the
    /// end of the stream announced.
    pub fn live_ended(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.eof && l.buf.is_empty() && l.end_sent)
    }

    fn on_event(&mut self, cx: &Cx<'_>, e: SeedEvent) {
        match e {
            SeedEvent::Welcomed => {
                if self.welcomed {
                    tracing::warn!(tracker = %self.tracker, "the tracker is back; publishing again");
                }
                self.welcomed = true;
            }
            SeedEvent::Published { path, content } => {
                tracing::info!(%path, content = content.0, "published");
                self.republish.remove(&path);
                if !self.published.contains(&path) {
                    self.published.push(path);
                }
            }
            SeedEvent::Refused(n) => {
                let hint = if n.code == ErrorCode::Unauthorized { " (check seed_key)" } else { "" };
                self.failure.get_or_insert(format!(
                    "the tracker at {} refused this seed: {}{hint}",
                    self.tracker, n.detail
                ));
            }
            SeedEvent::Node(NodeEvent::TrackerDown { notice, retry_in }) => {
                let why = notice.map_or_else(|| "the connection was closed".to_owned(), |n| n.detail);
                tracing::warn!(tracker = %self.tracker, %why, ?retry_in, "lost the tracker; serving on and reconnecting");
            }
            SeedEvent::TrackerLost => {
                let why = if self.welcomed {
                    format!("lost the connection to the tracker at {}", self.tracker)
                } else {
                    let e = cx.connect_error.unwrap_or("the connection was closed");
                    format!("cannot reach the tracker at {}: {e}", self.tracker)
                };
                self.failure.get_or_insert(why);
            }
            SeedEvent::Node(NodeEvent::Problem(n)) => {
                tracing::debug!(code = ?n.code, detail = %n.detail, "problem")
            }
            SeedEvent::TrackerWarning(n) => tracing::warn!("the tracker says: {}", n.detail),
            SeedEvent::Node(NodeEvent::Withdrawn { content, why }) => {
                tracing::warn!("no longer serving it: {why}; publishing the new version once it is whole");
                self.republish_later(content);
            }
            SeedEvent::Node(NodeEvent::VerdictRejected { chunk, to, .. }) => {
                tracing::warn!(chunk, %to, "a taker rejected a chunk we served")
            }
            // Unwrapped, so the trace reads as it did before the shared events moved to `Node`.
            SeedEvent::Node(other) => tracing::trace!(?other, "seed event"),
            other => tracing::trace!(?other, "seed event"),
        }
    }

    /// Schedules a new hash and publish of `content`'s file: its path, unless it already was.
    fn republish_later(&mut self, content: ContentId) -> Option<String> {
        let path = self.published.iter().find(|p| self.seed.content(p) == Some(content))?;
        if self.republish.contains_key(path) {
            return None;
        }
        self.republish.insert(path.clone(), (Some(Instant::now() + REPUBLISH_AFTER), None));
        Some(path.clone())
    }

    /// Checks the published files for changes when due, and hashes and publishes again the
    /// withdrawn ones whose time has come.
    fn watch_files(&mut self, now: Time) {
        let at = Instant::now();
        if at >= self.next_check {
            self.next_check = at + FILE_CHECK;
            self.seed.withdraw_changed(now);
            for content in self.seed.store().files.replaced() {
                if let Some(path) = self.republish_later(content) {
                    tracing::info!(%path, "replaced by another file; serving the old one until the new one is published");
                }
            }
        }
        let due: Vec<String> = self
            .republish
            .iter()
            .filter(|(_, (when, _))| when.is_some_and(|w| w <= at))
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            // A file still being written is not read whole every second.
            if self.seed.store().files.modified_within(&path, REPUBLISH_AFTER) {
                if let Some((when, _)) = self.republish.get_mut(&path) {
                    *when = Some(at + REPUBLISH_AFTER);
                }
                continue;
            }
            match self.seed.store_mut().files.hash(&path, self.chunk_size) {
                Ok(m) => {
                    self.republish.insert(path.clone(), (None, None));
                    tracing::info!(%path, bytes = m.geometry.size, chunks = m.num_chunks(), "publishing the new version");
                    self.seed.publish(now, m);
                }
                Err(e) => {
                    let why = e.to_string();
                    let Some((when, last)) = self.republish.get_mut(&path) else { continue };
                    if last.as_ref() != Some(&why) {
                        tracing::warn!(%path, "cannot publish the new version yet ({why}); trying again");
                    }
                    *when = Some(at + REPUBLISH_AFTER);
                    *last = Some(why);
                }
            }
        }
    }

    /// Reads stdin while a chunk is incomplete; pushes every full chunk (and the last one).
    fn pump_live(&mut self, registry: &Registry, now: Time) {
        let Some(live) = self.live.as_mut() else { return };
        if self.seed.content(&live.path).is_none() {
            return; // not published yet: the chunk index is unknown
        }
        loop {
            if live.buf.len() >= live.chunk_size || (live.eof && !live.buf.is_empty()) {
                let n = live.buf.len().min(live.chunk_size);
                let bytes: Bytes = live.buf.split_to(n).freeze();
                if let Err(e) = push_chunk(&mut self.seed, now, &live.path, bytes) {
                    self.failure.get_or_insert(e);
                    return;
                }
                if matches!(live.input, Input::File(_)) {
                    break; // a file never says WouldBlock: one chunk per turn
                }
                continue;
            }
            if live.eof {
                if !live.end_sent {
                    // Every chunk is pushed: tell the viewers the stream is over.
                    tracing::info!(path = %live.path, "live input ended; ending the stream");
                    self.seed.end_live(now, &live.path);
                    live.end_sent = true;
                }
                break;
            }
            match live.read_some() {
                Ok(0) => live.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failure.get_or_insert(format!("reading the live stream from stdin: {e}"));
                    return;
                }
            }
        }
        if let (Input::Pipe(rx), Some(token), false) = (&mut live.input, live.token, live.registered) {
            match registry.register(rx, token, Interest::READABLE) {
                Ok(()) => live.registered = true,
                Err(e) => {
                    self.failure.get_or_insert(format!("stdin: {e}"));
                }
            }
        }
    }
}

fn push_chunk(seed: &mut Seed<SeedStores>, now: Time, path: &str, bytes: Bytes) -> Result<(), String> {
    let Some(index) = seed.next_live_chunk(path) else { return Err(format!("{path}: not published")) };
    let Some(content) = seed.content(path) else { return Err(format!("{path}: not published")) };
    let len = u32::try_from(bytes.len()).map_err(|_| "chunk too large".to_owned())?;
    let digest = Digest::of(&bytes);
    seed.store_mut().write(content, index, &Payload::Real(bytes)).map_err(|e| e.to_string())?;
    seed.push_live_chunk(now, path, len, digest);
    tracing::trace!(chunk = index, "live chunk pushed");
    Ok(())
}

impl Live {
    fn read_some(&mut self) -> io::Result<usize> {
        let want = self.chunk_size - self.buf.len();
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let r = match &mut self.input {
            Input::Pipe(rx) => rx.read(&mut self.buf[old..]),
            Input::File(f) => f.read(&mut self.buf[old..]),
        };
        self.buf.truncate(old + *r.as_ref().unwrap_or(&0));
        r
    }
}

impl Input {
    fn stdin() -> io::Result<Self> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        let file = File::from(fd);
        if file.metadata()?.is_file() {
            return Ok(Input::File(file));
        }
        let rx = Receiver::from(std::os::fd::OwnedFd::from(file));
        rx.set_nonblocking(true)?;
        Ok(Input::Pipe(rx))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Input::Pipe(rx) = &self.input {
            // The file description may be shared with the shell: give it back blocking.
            let _ = rx.set_nonblocking(false);
        }
    }
}

impl Hosted for SeedNode {
    fn accept(&mut self, now: Time, _remote_host: String) -> Result<ConnId, Notice> {
        self.seed.accept(now)
    }

    fn tracker_pin(&self) -> Option<LinkKey> {
        self.tracker_key
    }

    fn tracker(&self) -> Option<&Endpoint> {
        Some(&self.tracker)
    }

    fn peer_link_key(&self, id: &[u8; 16]) -> Option<pdtp_core::wire::LinkSecret> {
        self.seed.link_key(id)
    }
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        // A verdict may make the machine re-read a chunk to check it: real bytes for that.
        let check = self.sendfile && matches!(msg, Message::Verdict(_));
        if check {
            self.seed.store_mut().files.set_deferred(false);
        }
        self.seed.handle_message(now, conn, msg);
        if check {
            self.seed.store_mut().files.set_deferred(true);
        }
    }
    fn file_payload(&self, data: &Data) -> Option<FileRange> {
        let stores = self.seed.store();
        match &data.payload {
            Payload::Real(b) if !stores.live_ids.contains(&data.content) => {
                stores.files.file_range(data.content, data.chunk, b)
            }
            _ => None,
        }
    }
    fn handle_malformed(&mut self, _now: Time, _conn: ConnId, _err: &DecodeError) -> bool {
        false
    }
    fn handle_connected(&mut self, now: Time, conn: ConnId) {
        self.seed.handle_connected(now, conn);
    }
    fn handle_closed(&mut self, now: Time, conn: ConnId) {
        self.seed.handle_closed(now, conn);
    }
    fn handle_timeout(&mut self, now: Time) {
        self.seed.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.seed.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.seed.poll_timeout()
    }
    fn register(&mut self, _registry: &Registry, base: Token) -> io::Result<()> {
        if let Some(l) = self.live.as_mut() {
            l.token = Some(base);
        }
        Ok(())
    }
    fn extra_tokens(&self) -> usize {
        usize::from(self.live.is_some())
    }
    fn extra_event(&mut self, cx: &mut Cx<'_>, _event: &Event) {
        self.pump_live(cx.registry, cx.time);
    }
    fn extra_timeout(&self) -> Option<Instant> {
        // A regular file on stdin cannot be polled: read on and on while published.
        let live = self
            .live
            .as_ref()
            .filter(|l| matches!(l.input, Input::File(_)) && !l.eof && self.seed.content(&l.path).is_some());
        let files = self.republish.values().filter_map(|(when, _)| *when).chain([self.next_check]);
        live.map(|l| l.since).into_iter().chain(files).min()
    }
    fn extra_timer(&mut self, cx: &mut Cx<'_>) {
        self.pump_live(cx.registry, cx.time);
        self.watch_files(cx.time);
    }
    fn after(&mut self, cx: &mut Cx<'_>) {
        while let Some(e) = self.seed.poll_event() {
            self.on_event(cx, e);
        }
        self.pump_live(cx.registry, cx.time);
    }
    fn status(&self) -> Status {
        match &self.failure {
            Some(f) => Status::Failed(f.clone()),
            None => Status::Running,
        }
    }
}
