//! [`ChunkStore`]s on disk, with positioned reads and writes (`pread`/`pwrite`).
//!
//! - [`SeedStore`]: reads chunks of files under `file_root` (read-only); [`manifest_for_file`]
//!   hashes a file chunk by chunk to publish it.
//! - [`PeerStore`]: writes verified chunks at their offset into the output file, or into an
//!   anonymous sparse cache file when the output is not seekable (stdout, a pipe, a FIFO, a
//!   live stream); reads them back to serve other peers and to deliver in order.
//!
//! Neither ever holds more than one chunk of a file in memory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use pdtp_core::{ChunkIndex, ChunkStore, ContentId, Digest, Geometry, Manifest, Payload, StoreError};

use crate::conn::FileRange;
use crate::paths::FileRoot;

/// Chunks a live stream keeps in a peer's cache by default (older ones are overwritten).
pub const DEFAULT_LIVE_SLOTS: u32 = 256;

/// Reads published files under a `file_root`.
///
/// In *deferred* mode ([`SeedStore::set_deferred`]) a read does no I/O: it returns a
/// placeholder of the chunk's length (a slice of one shared zeroed buffer), and the driver,
/// which recognises it with [`SeedStore::file_range`], sends the chunk from the file with
/// `sendfile(2)` instead. Only the serving path may see placeholders: anything that looks at
/// the bytes (re-verifying a chunk after a taker rejected it) must read with deferral off.
#[derive(Debug)]
pub struct SeedStore {
    root: FileRoot,
    files: BTreeMap<ContentId, SeedFile>,
    /// Files [`SeedStore::hash`] read, by path, until the manifest is opened: the bytes
    /// served are those of the handle that was hashed.
    hashed: BTreeMap<String, (File, Option<std::time::SystemTime>)>,
    deferred: bool,
    /// Zeroes, as long as the longest chunk opened; placeholders are slices of the last one
    /// (earlier, shorter ones are kept so placeholders still queued are recognised).
    zeros: Vec<Bytes>,
}

#[derive(Debug)]
struct SeedFile {
    file: Arc<File>,
    /// The content path it was published under (two paths may name one file: a symlink).
    rel: String,
    path: PathBuf,
    geometry: Geometry,
    /// Its modification time when opened: a rewrite in place moves it (a file replaced by
    /// a rename leaves the handle's alone: [`SeedStore::replaced`] finds those).
    modified: Option<std::time::SystemTime>,
}

/// Where a peer keeps the chunks of one content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// The user's output file: chunks are written at their byte offset, so the finished
    /// download *is* the file. Only for on-demand content and seekable outputs. A regular
    /// file already there (an interrupted download's `FILE.part`) is kept: its whole chunks
    /// are offered as [`ChunkStore::leftovers`] for the peer to check, and it is cut or
    /// extended to the content's size.
    Output(PathBuf),
    /// An anonymous sparse file in this directory (created, then unlinked at once, so it
    /// vanishes when the process exits, even on a crash).
    Cache(PathBuf),
}

/// Stores a peer's verified chunks on disk.
#[derive(Debug)]
pub struct PeerStore {
    cache_dir: PathBuf,
    live_slots: u32,
    /// Backings chosen by the driver before the machine opens a content, by manifest path.
    planned: BTreeMap<String, Backing>,
    entries: BTreeMap<ContentId, PeerEntry>,
}

#[derive(Debug)]
struct PeerEntry {
    file: File,
    /// For messages: the output path, or the cache directory.
    path: PathBuf,
    chunk_size: u32,
    geometry: Option<Geometry>,
    /// `slots[s] = Some((chunk, len))` when slot `s` holds a verified chunk. On-demand content
    /// has one slot per chunk; live content a ring of `live_slots`.
    slots: Vec<Option<(ChunkIndex, u32)>>,
    /// Chunks found in an existing output file, not yet handed to the peer to check.
    leftovers: std::ops::Range<ChunkIndex>,
}

/// Hashes `rel` under `root` chunk by chunk (one chunk in memory at a time) into a manifest.
pub fn manifest_for_file(root: &FileRoot, rel: &str, chunk_size: u32) -> Result<Manifest, StoreError> {
    Ok(hash_file(root, rel, chunk_size)?.0)
}

/// [`manifest_for_file`], with the handle it read and the file's modification time, which
/// did not move while it was hashed (a file still being written is refused: hash it later).
fn hash_file(
    root: &FileRoot,
    rel: &str,
    chunk_size: u32,
) -> Result<(Manifest, File, Option<std::time::SystemTime>), StoreError> {
    if chunk_size == 0 {
        return Err(StoreError::new("chunk_size must be > 0"));
    }
    let path = root.resolve(rel).map_err(|e| StoreError::new(e.to_string()))?;
    let file = File::open(&path).map_err(|e| io_err("opening", &path, &e))?;
    let meta = file.metadata().map_err(|e| io_err("reading the size of", &path, &e))?;
    let (size, modified) = (meta.len(), meta.modified().ok());
    let geometry = Geometry::new(size, chunk_size);
    let mut buf = vec![0u8; chunk_size as usize];
    let mut hashes = Vec::with_capacity(geometry.num_chunks() as usize);
    for i in 0..geometry.num_chunks() {
        let r = geometry.chunk_bytes(i);
        let chunk = &mut buf[..(r.end - r.start) as usize];
        file.read_exact_at(chunk, r.start)
            .map_err(|e| io_err(&format!("hashing chunk {i} of"), &path, &e))?;
        hashes.push(Digest::of(chunk));
    }
    let after = file.metadata().map_err(|e| io_err("reading the size of", &path, &e))?;
    if after.len() != size || after.modified().ok() != modified {
        return Err(StoreError::new(format!("{}: changed while it was being hashed", path.display())));
    }
    Ok((Manifest { path: rel.to_owned(), geometry, hashes, live: None }, file, modified))
}

impl SeedStore {
    /// A store serving files under `root`.
    pub fn new(root: FileRoot) -> Self {
        Self { root, files: BTreeMap::new(), hashed: BTreeMap::new(), deferred: false, zeros: Vec::new() }
    }

    /// Turns deferred reads on or off (see the type's docs).
    pub fn set_deferred(&mut self, on: bool) {
        self.deferred = on;
    }

    /// Where the chunk behind `placeholder` lives in its file, if `placeholder` is one this
    /// store handed out for `chunk` of `content` (real bytes give `None`).
    pub fn file_range(
        &self,
        content: ContentId,
        chunk: ChunkIndex,
        placeholder: &Bytes,
    ) -> Option<FileRange> {
        let p = placeholder.as_ptr() as usize;
        let inside = |z: &Bytes| {
            let start = z.as_ptr() as usize;
            p >= start && p + placeholder.len() <= start + z.len()
        };
        if placeholder.is_empty() || !self.zeros.iter().any(inside) {
            return None;
        }
        let f = self.files.get(&content)?;
        if chunk >= f.geometry.num_chunks() {
            return None;
        }
        let r = f.geometry.chunk_bytes(chunk);
        let len = usize::try_from(r.end - r.start).ok()?;
        (len == placeholder.len()).then(|| FileRange { file: Arc::clone(&f.file), offset: r.start, len })
    }

    /// The root it serves from.
    pub fn root(&self) -> &FileRoot {
        &self.root
    }

    /// Contents whose path names another file than the one served (replaced by a rename:
    /// the open handle still reads the published bytes, so they are served on until the new
    /// file is published). A path with no file (deleted) is not listed: its bytes, read
    /// through the handle, are still the published ones.
    pub fn replaced(&self) -> Vec<ContentId> {
        use std::os::unix::fs::MetadataExt;
        // Through the content path, so a symlink pointed elsewhere counts too.
        let named = |f: &SeedFile| self.root.resolve(&f.rel).ok().and_then(|p| p.metadata().ok());
        let other = |f: &SeedFile| match (named(f), f.file.metadata().ok()) {
            (Some(now), Some(ours)) => (now.dev(), now.ino()) != (ours.dev(), ours.ino()),
            _ => false,
        };
        self.files.iter().filter(|(_, f)| other(f)).map(|(&id, _)| id).collect()
    }

    /// Whether `rel`'s file was modified less than `span` ago (a file still being written,
    /// not worth hashing yet); `false` when it cannot be read.
    pub fn modified_within(&self, rel: &str, span: std::time::Duration) -> bool {
        let modified =
            self.root.resolve(rel).ok().and_then(|p| p.metadata().ok()).and_then(|m| m.modified().ok());
        modified.and_then(|m| m.elapsed().ok()).is_some_and(|age| age < span)
    }

    /// Hashes `rel` into a manifest (as [`manifest_for_file`]) and keeps the handle it read
    /// for [`ChunkStore::open`] of that manifest, so a file replaced in between is not served
    /// under the manifest of the one hashed. Fails if the file changed while it was hashed.
    pub fn hash(&mut self, rel: &str, chunk_size: u32) -> Result<Manifest, StoreError> {
        let (manifest, file, modified) = hash_file(&self.root, rel, chunk_size)?;
        self.hashed.insert(rel.to_owned(), (file, modified));
        Ok(manifest)
    }
}

impl ChunkStore for SeedStore {
    /// Opens `manifest.path` under the root (refusing escapes) and checks its size.
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError> {
        let path = self.root.resolve(&manifest.path).map_err(|e| StoreError::new(e.to_string()))?;
        let (file, hashed_at) = match self.hashed.remove(&manifest.path) {
            Some((file, modified)) => (file, Some(modified)),
            None => (File::open(&path).map_err(|e| io_err("opening", &path, &e))?, None),
        };
        let meta = file.metadata().map_err(|e| io_err("reading the size of", &path, &e))?;
        let size = meta.len();
        if size != manifest.geometry.size {
            return Err(StoreError::new(format!(
                "{}: is {size} bytes but its manifest says {}; republish it",
                path.display(),
                manifest.geometry.size
            )));
        }
        let longest = usize::try_from(manifest.geometry.chunk_size).unwrap_or(usize::MAX);
        if self.zeros.last().is_none_or(|z| z.len() < longest) {
            // `vec![0; n]` asks the allocator for zeroed memory: pages nobody writes to.
            self.zeros.push(Bytes::from(vec![0u8; longest]));
        }
        // The time the manifest's bytes had: a rewrite between hashing and now is a change.
        let modified = hashed_at.unwrap_or_else(|| meta.modified().ok());
        // A new version of a content path replaces the old one (whose handle closes).
        self.files.retain(|_, f| f.rel != manifest.path);
        let rel = manifest.path.clone();
        self.files.insert(
            content,
            SeedFile { file: Arc::new(file), rel, path, geometry: manifest.geometry, modified },
        );
        Ok(())
    }

    /// Its file's size or modification time moved since it was opened (one `fstat`).
    fn changed(&mut self, content: ContentId) -> Option<String> {
        let f = self.files.get(&content)?;
        let meta = match f.file.metadata() {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: cannot be checked any more: {e}", f.path.display())),
        };
        let what = if meta.len() != f.geometry.size {
            format!("{} bytes where it was {}", meta.len(), f.geometry.size)
        } else if meta.modified().ok() != f.modified {
            "rewritten in place, same size".to_owned()
        } else {
            return None;
        };
        Some(format!("{} changed on disk since it was published ({what})", f.path.display()))
    }

    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError> {
        let f = self.files.get(&content).ok_or_else(|| unknown(content))?;
        if chunk >= f.geometry.num_chunks() {
            return Err(out_of_range(content, chunk, f.geometry.num_chunks()));
        }
        let r = f.geometry.chunk_bytes(chunk);
        if self.deferred {
            let len = usize::try_from(r.end - r.start).map_err(|_| StoreError::new("chunk too large"))?;
            let zeros = self.zeros.last().ok_or_else(|| unknown(content))?;
            return Ok(Payload::Real(zeros.slice(..len)));
        }
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        f.file
            .read_exact_at(&mut buf, r.start)
            .map_err(|e| io_err(&format!("reading chunk {chunk} of"), &f.path, &e))?;
        Ok(Payload::Real(Bytes::from(buf)))
    }

    fn write(
        &mut self,
        content: ContentId,
        _chunk: ChunkIndex,
        _payload: &Payload,
    ) -> Result<(), StoreError> {
        Err(StoreError::new(format!("content {}: a seed's files are read-only", content.0)))
    }

    /// Nothing to forget: the file stays on disk.
    fn discard(&mut self, _content: ContentId, _chunk: ChunkIndex) -> Result<(), StoreError> {
        Ok(())
    }
}

impl PeerStore {
    /// A store whose cache files go in `cache_dir` (e.g. `std::env::temp_dir()`).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            live_slots: DEFAULT_LIVE_SLOTS,
            planned: BTreeMap::new(),
            entries: BTreeMap::new(),
        }
    }

    /// Sets how many chunks of a live stream the cache keeps (at least 1).
    pub fn with_live_slots(mut self, slots: u32) -> Self {
        self.live_slots = slots.max(1);
        self
    }

    /// Chooses where the content published as `path` goes when the machine opens it.
    ///
    /// Without a plan, a content goes to a cache file. A plan of [`Backing::Output`] for a
    /// live stream is ignored (live data is delivered through a sink and cached in a ring).
    pub fn plan(&mut self, path: &str, backing: Backing) {
        self.planned.insert(path.to_owned(), backing);
    }

    /// Whether chunk `chunk` of `content` is held.
    pub fn has(&self, content: ContentId, chunk: ChunkIndex) -> bool {
        self.entries.get(&content).is_some_and(|e| e.slot(chunk).is_some())
    }

    /// Forgets a content and closes its file (the output file stays; a cache file vanishes).
    pub fn close(&mut self, content: ContentId) {
        self.entries.remove(&content);
    }
}

impl ChunkStore for PeerStore {
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError> {
        if self.entries.contains_key(&content) {
            return Ok(());
        }
        let chunk_size = manifest.geometry.chunk_size;
        if chunk_size == 0 {
            return Err(StoreError::new(format!("{}: manifest chunk_size is zero", manifest.path)));
        }
        let live = manifest.is_live();
        let mut leftovers = 0..0;
        let (file, path) = match self.planned.get(&manifest.path) {
            Some(Backing::Output(out)) if !live => {
                // Not truncated: what an earlier run left is offered as leftovers, and the
                // peer keeps only the chunks that hash right.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(out)
                    .map_err(|e| io_err("opening the output", out, &e))?;
                let meta = file.metadata().map_err(|e| io_err("inspecting the output", out, &e))?;
                if meta.is_file() {
                    // The whole chunks inside what was there (none in a new, empty file).
                    let g = manifest.geometry;
                    let whole = if meta.len() >= g.size {
                        g.num_chunks()
                    } else {
                        u32::try_from(meta.len() / u64::from(chunk_size)).unwrap_or(u32::MAX)
                    };
                    leftovers = 0..whole;
                    // Sparse: holes until chunks arrive. The size is exact from the start (a
                    // longer leftover is cut).
                    file.set_len(g.size).map_err(|e| io_err("sizing the output", out, &e))?;
                }
                (file, out.clone())
            }
            Some(Backing::Cache(dir)) => open_cache(dir, content)?,
            _ => open_cache(&self.cache_dir, content)?,
        };
        let slots = if live { self.live_slots } else { manifest.geometry.num_chunks() };
        let geometry = (!live).then_some(manifest.geometry);
        let mut slots = vec![None; slots as usize];
        // Leftovers are readable until the peer has checked them (and discarded the bad).
        for i in leftovers.clone() {
            slots[i as usize] = Some((i, manifest.geometry.chunk_len(i)));
        }
        self.entries.insert(content, PeerEntry { file, path, chunk_size, geometry, slots, leftovers });
        Ok(())
    }

    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError> {
        let e = self.entries.get(&content).ok_or_else(|| unknown(content))?;
        let (slot, len) = e.slot(chunk).ok_or_else(|| {
            StoreError::new(format!(
                "content {} chunk {chunk}: not held (never written or discarded)",
                content.0
            ))
        })?;
        let mut buf = vec![0u8; len as usize];
        e.file
            .read_exact_at(&mut buf, e.offset(slot))
            .map_err(|err| io_err(&format!("reading chunk {chunk} from"), &e.path, &err))?;
        Ok(Payload::Real(Bytes::from(buf)))
    }

    fn write(&mut self, content: ContentId, chunk: ChunkIndex, payload: &Payload) -> Result<(), StoreError> {
        let e = self.entries.get_mut(&content).ok_or_else(|| unknown(content))?;
        let Payload::Real(bytes) = payload else {
            return Err(StoreError::new("a virtual payload cannot be written to disk"));
        };
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let slot = match e.geometry {
            Some(g) => {
                if chunk >= g.num_chunks() {
                    return Err(out_of_range(content, chunk, g.num_chunks()));
                }
                if len != g.chunk_len(chunk) {
                    return Err(StoreError::new(format!(
                        "content {} chunk {chunk}: {len} bytes, expected {}",
                        content.0,
                        g.chunk_len(chunk)
                    )));
                }
                chunk as usize
            }
            None => {
                if len == 0 || len > e.chunk_size {
                    return Err(StoreError::new(format!(
                        "content {} chunk {chunk}: {len} bytes, expected 1..={}",
                        content.0, e.chunk_size
                    )));
                }
                (chunk % e.slots.len() as u32) as usize
            }
        };
        // Forget the slot first: if the write fails half-way, nothing claims the old bytes.
        e.slots[slot] = None;
        e.file
            .write_all_at(bytes, e.offset(slot))
            .map_err(|err| io_err(&format!("writing chunk {chunk} to"), &e.path, &err))?;
        e.slots[slot] = Some((chunk, len));
        Ok(())
    }

    /// Forgets the chunk; its bytes stay on disk until overwritten (no hole punching).
    fn discard(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<(), StoreError> {
        if let Some(e) = self.entries.get_mut(&content)
            && let Some((slot, _)) = e.slot(chunk)
        {
            e.slots[slot] = None;
        }
        Ok(())
    }

    /// The whole chunks inside an output file that existed before `open` (an interrupted
    /// download's `FILE.part`), whatever their bytes; once per content.
    fn leftovers(&mut self, content: ContentId) -> std::ops::Range<ChunkIndex> {
        self.entries.get_mut(&content).map_or(0..0, |e| std::mem::replace(&mut e.leftovers, 0..0))
    }
}

impl PeerEntry {
    /// The slot holding `chunk` and its length, if held.
    fn slot(&self, chunk: ChunkIndex) -> Option<(usize, u32)> {
        let n = self.slots.len() as u32;
        let slot = if self.geometry.is_some() { chunk } else { chunk % n };
        match self.slots.get(slot as usize) {
            Some(Some((c, len))) if *c == chunk => Some((slot as usize, *len)),
            _ => None,
        }
    }

    fn offset(&self, slot: usize) -> u64 {
        slot as u64 * u64::from(self.chunk_size)
    }
}

/// Creates an anonymous cache file in `dir`: created, then unlinked at once (the open handle
/// keeps the data; nothing is left behind when the process exits, even on a crash).
fn open_cache(dir: &Path, content: ContentId) -> Result<(File, PathBuf), StoreError> {
    let name = dir.join(format!("pdtp-cache-{}-{}.part", std::process::id(), content.0));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&name)
        .map_err(|e| io_err("creating the cache file", &name, &e))?;
    std::fs::remove_file(&name).map_err(|e| io_err("unlinking the cache file", &name, &e))?;
    Ok((file, dir.to_owned()))
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> StoreError {
    StoreError::new(format!("{what} {}: {e}", path.display()))
}

fn unknown(content: ContentId) -> StoreError {
    StoreError::new(format!("content {} was never opened", content.0))
}

fn out_of_range(content: ContentId, chunk: ChunkIndex, n: u32) -> StoreError {
    StoreError::new(format!("content {} has {n} chunks; chunk {chunk} does not exist", content.0))
}

#[cfg(test)]
mod tests;
