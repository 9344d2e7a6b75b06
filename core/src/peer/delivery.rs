//! In-order delivery: verified chunks become `Deliver` events in byte order, one per poll.

use crate::chunks::ByteRange;
use crate::store::ChunkStore;
use crate::wire::{ErrorCode, Interest, Message, Notice};

use super::{Peer, PeerEvent};

impl<S: ChunkStore> Peer<S> {
    /// Produces the next in-order `Deliver` (or `DownloadComplete`), if one is ready.
    pub(super) fn pump(&mut self) -> Option<PeerEvent> {
        let ids: Vec<_> = self.downloads.keys().copied().collect();
        for content in ids {
            let (next, live, complete_sent) = {
                let d = &self.downloads[&content];
                (d.next, d.live, d.complete_sent)
            };
            let Some(c) = self.node.contents.get(&content) else { continue };
            let n = c.manifest.num_chunks();
            let g = c.manifest.geometry;
            if next < n && c.have.contains(next) {
                let cached = match self.cached.take() {
                    Some((cc, ci, p)) if cc == content && ci == next => Some(p),
                    other => {
                        self.cached = other;
                        None
                    }
                };
                let payload = match cached {
                    Some(p) => p,
                    None => match self.node.store.read(content, next) {
                        Ok(p) => p,
                        Err(e) => return Some(self.lost(content, next, e.to_string())),
                    },
                };
                if let Some(d) = self.downloads.get_mut(&content) {
                    d.next = next + 1;
                }
                return Some(PeerEvent::Deliver { content, offset: g.chunk_bytes(next).start, payload });
            }
            if !live && next >= n && !complete_sent {
                if let Some(d) = self.downloads.get_mut(&content) {
                    d.complete_sent = true;
                }
                return Some(PeerEvent::DownloadComplete { content });
            }
        }
        None
    }

    /// The store lost a chunk we held: forget it and ask for it again.
    fn lost(&mut self, content: crate::ContentId, chunk: crate::ChunkIndex, why: String) -> PeerEvent {
        let now = self.now;
        if let Some(c) = self.node.contents.get_mut(&content) {
            c.have.remove(chunk);
            let r = c.manifest.geometry.chunk_bytes(chunk);
            let range = ByteRange::new(r.start, r.end);
            self.node.unprovide(now, content, chunk, chunk + 1);
            self.node.send_tracker(now, Message::Request(Interest::range(content, range)));
        }
        PeerEvent::Problem(Notice::new(
            ErrorCode::ChunkUnavailable,
            format!("store lost chunk {chunk}: {why}"),
        ))
    }
}
