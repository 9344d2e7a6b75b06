//! A seed's live stream: publishing an empty live manifest and appending chunks, with a
//! bounded window of chunks kept.

use crate::auth::append_proof;
use crate::chunks::Geometry;
use crate::ids::{ChunkIndex, ContentId};
use crate::manifest::{Digest, LiveInfo, Manifest};
use crate::node::NodeEvent;
use crate::signing::SeedSignature;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{AppendChunks, ErrorCode, Message, Notice};

use super::Seed;

impl<S: ChunkStore> Seed<S> {
    /// Publishes a live stream at `path` with no chunks yet.
    pub fn start_live(&mut self, now: Time, path: &str, chunk_size: u32, bitrate_bps: u64) {
        let manifest = Manifest {
            path: path.to_string(),
            geometry: Geometry::new(0, chunk_size),
            hashes: Vec::new(),
            live: Some(LiveInfo { bitrate_bps, first_chunk: 0 }),
        };
        self.publish(now, manifest);
    }

    /// Announces the next chunk of the live stream at `path`.
    ///
    /// The driver has already stored its bytes under the published content id and the next
    /// chunk index ([`Seed::next_live_chunk`]). Every chunk but the stream's last must be
    /// exactly `chunk_size` long. The seed sends `AppendChunks` with its proof, then keeps at
    /// most `live_window` chunks: older ones are discarded from the store and the window
    /// start moves up. Calls before `Published`, or after the tracker link is lost, are
    /// refused with a `Problem` event.
    pub fn push_live_chunk(&mut self, now: Time, path: &str, len: u32, digest: Digest) {
        match self.append(now, path, len, digest) {
            Ok(()) => {}
            Err(why) => {
                let n = Notice::new(ErrorCode::Unexpected, format!("{path}: {why}"));
                self.node.emit(NodeEvent::Problem(n));
            }
        }
    }

    /// Ends the live stream at `path`: sends an `AppendChunks` with no chunks (the end mark,
    /// docs/protocol.md), which the tracker forwards to every viewer so their downloads
    /// complete once they have delivered the last chunk. Push the last (possibly short)
    /// chunk first; chunks pushed afterwards would be ignored by viewers that saw the end.
    /// Refused with a `Problem` event before `Published` or without a tracker link.
    pub fn end_live(&mut self, now: Time, path: &str) {
        self.ended.insert(path.trim_start_matches('/').to_string());
        let sent = (|| {
            let content = self.content(path).ok_or("not published yet")?;
            // Without a tracker the end goes out when it is back (`Seed::on_published`).
            let Some(nonce) = self.node.nonce else { return Ok(()) };
            let c = self.node.contents.get(&content).ok_or("not published yet")?;
            let info = c.manifest.live.ok_or("not a live stream")?;
            let (first, size) = (c.manifest.num_chunks(), c.manifest.geometry.size);
            let window_start = info.first_chunk;
            let proof = append_proof(&self.key, &nonce, content, first, size, window_start, &[]);
            let signature = self.sign_live(path, &[], size, true);
            let hashes = Vec::new();
            let msg = AppendChunks { content, first, new_size: size, hashes, window_start, proof, signature };
            self.node.send_tracker(now, Message::AppendChunks(Box::new(msg)));
            Ok::<(), &'static str>(())
        })();
        if let Err(why) = sent {
            let n = Notice::new(ErrorCode::Unexpected, format!("{path}: {why}"));
            self.node.emit(NodeEvent::Problem(n));
        }
    }

    /// The index the next live chunk of `path` will get (where the driver stores it).
    pub fn next_live_chunk(&self, path: &str) -> Option<ChunkIndex> {
        let content = self.content(path)?;
        Some(self.node.contents.get(&content)?.manifest.num_chunks())
    }

    /// The oldest chunk still kept for a live content.
    pub fn window_start(&self, content: ContentId) -> Option<ChunkIndex> {
        Some(self.node.contents.get(&content)?.manifest.live?.first_chunk)
    }

    /// Extends the signed chain of the stream at `path` and signs it, if the seed signs.
    fn sign_live(&mut self, path: &str, hashes: &[Digest], size: u64, ended: bool) -> Option<SeedSignature> {
        let key = self.signer.as_ref()?;
        let chain = self.chains.get_mut(path.trim_start_matches('/'))?;
        for h in hashes {
            chain.push(h);
        }
        Some(key.sign(&chain.statement(size, ended)))
    }

    fn append(&mut self, now: Time, path: &str, len: u32, digest: Digest) -> Result<(), &'static str> {
        let content = self.content(path).ok_or("not published yet")?;
        // Without a tracker (an outage) the chunk is kept and announced with the stream when
        // the tracker is back.
        let nonce = self.node.nonce;
        let live_window = self.live_window;
        let c = self.node.contents.get_mut(&content).ok_or("not published yet")?;
        let info = c.manifest.live.ok_or("not a live stream")?;
        let g = c.manifest.geometry;
        if len == 0 || len > g.chunk_size {
            return Err("chunk length must be 1..=chunk_size");
        }
        if g.size % u64::from(g.chunk_size) != 0 {
            return Err("the stream already ended with a short chunk");
        }
        let first = c.manifest.num_chunks();
        let new_size = g.size + u64::from(len);
        c.manifest.geometry.size = new_size;
        c.manifest.hashes.push(digest);
        c.have.grow(first + 1);
        c.have.insert(first);
        let old_start = info.first_chunk;
        let window_start = (first + 1).saturating_sub(live_window).max(old_start);
        for i in old_start..window_start {
            c.have.remove(i);
        }
        if let Some(l) = c.manifest.live.as_mut() {
            l.first_chunk = window_start;
        }
        for i in old_start..window_start {
            if let Err(e) = self.node.store.discard(content, i) {
                self.node.emit(NodeEvent::Problem(Notice::new(ErrorCode::Unexpected, e.to_string())));
            }
        }
        let hashes = vec![digest];
        let signature = self.sign_live(path, &hashes, new_size, false);
        if let Some(nonce) = nonce {
            let proof = append_proof(&self.key, &nonce, content, first, new_size, window_start, &hashes);
            let msg = AppendChunks { content, first, new_size, hashes, window_start, proof, signature };
            self.node.send_tracker(now, Message::AppendChunks(Box::new(msg)));
        }
        Ok(())
    }
}
