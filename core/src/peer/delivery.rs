//! In-order delivery: verified chunks become `Deliver` events in byte order, one per poll.

use crate::chunks::ByteRange;
use crate::node::NodeEvent;
use crate::payload::Payload;
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
        // Kept payloads delivery has passed (a live chunk skipped) would hold the room.
        self.forget_ahead(content, next);
        let kept = self.ahead.remove(&(content, next));
        if let Some(p) = &kept {
            self.ahead_bytes -= p.len() as usize;
        }
        let payload = match kept {
            Some(p) => p,
            None if !self.deliver_payloads => {
                let c = self.node.contents.get(&content)?;
                let (len, tag) = (c.manifest.geometry.chunk_len(next), c.manifest.hash(next).copied()?);
                Payload::Virtual { len, tag }
            }
            None => match self.node.store.read(content, next) {
                Ok(p) => p,
                Err(e) => return Some(self.lost(content, next, e.to_string())),
            },
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
