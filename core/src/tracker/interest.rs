//! Request / unrequest / provide / unprovide.

use core::ops::Range;

use super::Tracker;
use super::state::NodeIdx;
use crate::chunks::{ByteRange, Cover};
use crate::ids::{ChunkIndex, ConnId};
use crate::wire::{ErrorCode, Interest, Message, Notice};

impl Tracker {
    /// Maps an interest to a chunk range, or warns the sender and returns `None`.
    ///
    /// Additions (`Request`, `Provide`) are clipped to the live window; removals are not:
    /// a viewer's `Unrequest`/`Unprovide` for chunks the window already left must still
    /// clear its wants and holdings there, or their pending counts leak and the sweep
    /// re-arms forever.
    fn chunks_for(
        &mut self,
        conn: ConnId,
        interest: &Interest,
        cover: Cover,
        clip_to_window: bool,
    ) -> Option<(usize, Range<ChunkIndex>)> {
        let ci = self.ix(interest.content);
        let Some(content) = self.contents.get(ci) else {
            self.warn(conn, ErrorCode::UnknownContent, format!("no content {}", interest.content.0));
            return None;
        };
        let g = content.manifest.geometry;
        let range = interest.range.unwrap_or(ByteRange::ALL);
        let live = content.manifest.is_live();
        if !live && range.start >= g.size && g.size > 0 {
            let detail = format!("range starts at byte {} but the content has {} bytes", range.start, g.size);
            self.warn(conn, ErrorCode::RangePastEnd, detail);
            return None;
        }
        let chunks = g.chunks_of(range, cover);
        let floor = if clip_to_window { content.window_start } else { 0 };
        let start = chunks.start.max(floor);
        Some((ci, start..chunks.end.max(start)))
    }

    pub(super) fn on_request(&mut self, idx: NodeIdx, conn: ConnId, interest: Interest) {
        let Some((ci, chunks)) = self.chunks_for(conn, &interest, Cover::Touched, true) else { return };
        let content = &mut self.contents[ci];
        let n = content.num_chunks();
        let Some(node) = self.nodes[idx.0 as usize].as_mut() else { return };
        let nc = node.content_entry(content.id, n);
        let range = interest.range.unwrap_or(ByteRange::ALL);
        if content.manifest.is_live() && range.end.is_none() {
            let g = content.manifest.geometry;
            let from = u32::try_from(range.start / u64::from(g.chunk_size)).unwrap_or(u32::MAX);
            nc.open_from = Some(from.max(content.window_start));
            content.open_requesters.insert(idx);
        }
        for c in chunks.clone() {
            if !nc.have.contains(c) && nc.want.insert(c) {
                content.add_pending(c);
            }
        }
        nc.cursor = nc.cursor.min(chunks.start);
        if !content.manifest.is_live() && interest.range.is_some_and(|r| r.end.is_none()) {
            // An open-ended ranged request for a file says where its viewer plays (a player
            // seeked); a closed range (a chunk asked for again) does not.
            nc.focus = Some(chunks.start);
        }
        nc.completed = false;
        self.mark_dirty(idx);
    }

    pub(super) fn on_unrequest(&mut self, idx: NodeIdx, conn: ConnId, interest: Interest) {
        let Some((ci, chunks)) = self.chunks_for(conn, &interest, Cover::Touched, false) else { return };
        let content = &mut self.contents[ci];
        let Some(node) = self.nodes[idx.0 as usize].as_mut() else { return };
        let Some(nc) = node.content_mut(content.id) else { return };
        if interest.range.is_none_or(|r| r.end.is_none()) {
            nc.open_from = None;
            content.open_requesters.remove(&idx);
        }
        for c in chunks {
            if nc.pending(c) {
                content.remove_pending(c);
            }
            // Chunks already in flight run to their end, but are no longer wanted: a failed
            // transfer must not queue them again (the viewer has moved past them).
            nc.want.remove(c);
        }
    }

    pub(super) fn on_provide(&mut self, idx: NodeIdx, conn: ConnId, interest: Interest) {
        let Some((ci, chunks)) = self.chunks_for(conn, &interest, Cover::Whole, true) else { return };
        let content = &mut self.contents[ci];
        let n = content.num_chunks();
        let Some(node) = self.nodes[idx.0 as usize].as_mut() else { return };
        let (is_seed, reused) = (node.is_seed(), node.reused);
        let nc = node.content_entry(content.id, n);
        for c in chunks {
            if nc.pending(c) {
                content.remove_pending(c);
            }
            nc.want.remove(c);
            if nc.have.insert(c) {
                content.add_holder(c, idx, is_seed, reused);
            }
        }
        self.mark_dirty(idx);
    }

    pub(super) fn on_unprovide(&mut self, idx: NodeIdx, conn: ConnId, interest: Interest) {
        let Some((ci, chunks)) = self.chunks_for(conn, &interest, Cover::Touched, false) else { return };
        let content = &mut self.contents[ci];
        let Some(node) = self.nodes[idx.0 as usize].as_mut() else { return };
        let is_seed = node.is_seed();
        let Some(nc) = node.content_mut(content.id) else { return };
        let mut lost = false;
        for c in chunks {
            if nc.have.remove(c) {
                content.remove_holder(c, is_seed);
                lost |= content.holder_count[c as usize] == 0;
            }
        }
        // A seed that stops holding a file's chunks while connected withdrew it (it changed
        // at its source): if nobody else holds them, its viewers cannot finish this version
        // and are told so, rather than wait for ever. (A live window slides past old chunks.)
        if is_seed && lost && !content.manifest.is_live() {
            content.withdrawn = true;
            let detail = format!(
                "'{}' was withdrawn by its seed (it changed at its source) and nobody else holds all of it",
                content.manifest.path
            );
            let viewers: Vec<ConnId> = content
                .viewers
                .iter()
                .filter_map(|v| self.nodes.get(v.0 as usize)?.as_ref())
                .filter(|n| !n.is_seed())
                .map(|n| n.conn)
                .collect();
            for conn in viewers {
                self.send(conn, Message::Warning(Notice::new(ErrorCode::Withdrawn, detail.clone())));
            }
        }
    }
}
