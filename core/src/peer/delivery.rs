//! In-order delivery: verified chunks become `Deliver` events in byte order, one per poll.

use crate::chunks::ByteRange;
use crate::node::NodeEvent;
use crate::store::ChunkStore;
use crate::wire::{ErrorCode, Interest, Message, Notice};

use super::{Peer, PeerEvent};

impl<S: ChunkStore> Peer<S> {
    /// Produces the next in-order `Deliver` (or `DownloadComplete`), if one is ready.
    pub(super) fn pump(&mut self) -> Option<PeerEvent> {
        // Find the first download with something to hand out, without allocating.
        let (content, next, ready) = self.downloads.iter().find_map(|(content, d)| {
            let c = self.node.contents.get(content)?;
            let n = c.manifest.num_chunks();
            if d.next < n && c.have.contains(d.next) {
                Some((*content, d.next, true))
            } else if (!d.live || d.ended) && d.next >= n && !d.complete_sent {
                Some((*content, d.next, false))
            } else {
                None
            }
        })?;
        if !ready {
            if let Some(d) = self.downloads.get_mut(&content) {
                d.complete_sent = true;
            }
            return Some(PeerEvent::DownloadComplete { content });
        }
        let payload = match self.cached.take() {
            Some((cc, ci, p)) if cc == content && ci == next => p,
            other => {
                self.cached = other;
                match self.node.store.read(content, next) {
                    Ok(p) => p,
                    Err(e) => return Some(self.lost(content, next, e.to_string())),
                }
            }
        };
        let offset =
            self.node.contents.get(&content).map_or(0, |c| c.manifest.geometry.chunk_bytes(next).start);
        if let Some(d) = self.downloads.get_mut(&content) {
            d.next = next + 1;
        }
        Some(PeerEvent::Deliver { content, offset, payload })
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
        PeerEvent::Node(NodeEvent::Problem(Notice::new(
            ErrorCode::ChunkUnavailable,
            format!("store lost chunk {chunk}: {why}"),
        )))
    }
}
