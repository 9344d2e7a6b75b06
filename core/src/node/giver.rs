//! The giver side, shared by seeds and peers: serve a chunk for a matching token, and
//! re-check our copy when the tracker says a taker rejected it.

use super::orders::Served;
use super::{Node, NodeEvent};
use crate::ids::{ConnId, ContentId, Token};
use crate::payload::Payload;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{Data, ErrorCode, Message, Method, Notice, TransferOrder};

impl<S: ChunkStore, E: From<NodeEvent>> Node<S, E> {
    /// An order to give a chunk: connect and `Put`, or wait for the taker's `Get`.
    pub(super) fn giver_order(&mut self, now: Time, o: TransferOrder) {
        if !self.holds(o.content, o.chunk) {
            // The tracker thinks we hold it (a live window slid, or a dropped corrupt copy).
            self.unprovide(now, o.content, o.chunk, o.chunk.saturating_add(1));
            self.stats.transfers_failed += 1;
            let reason = "ordered to give a chunk we do not hold".to_string();
            self.emit(NodeEvent::TransferFailed { token: o.token, reason });
            return;
        }
        match (o.method, &o.connect) {
            (Method::Put, Some(_)) | (Method::Get, None) => self.start_order(now, o),
            (Method::Get, Some(_)) if o.punch => self.start_order(now, o),
            _ => {
                let n = Notice::about(o.token, ErrorCode::Unexpected, "inconsistent giver order");
                self.emit(NodeEvent::Problem(n));
            }
        }
    }

    /// Reads the chunk and sends it as `Data` on `conn` (after a `Put`, or answering a `Get`).
    pub(super) fn serve(&mut self, now: Time, conn: ConnId, token: Token) {
        let Some(o) = self.orders.get(&token) else { return };
        let (content, chunk, to) = (o.content, o.chunk, o.other);
        if self.holds(content, chunk)
            && let Some(why) = self.store.changed(content)
        {
            self.withdraw(now, content, why);
        }
        let read = if self.holds(content, chunk) { self.store.read(content, chunk).ok() } else { None };
        let Some(mut payload) = read else {
            self.orders.remove(&token);
            let n = Notice::about(token, ErrorCode::ChunkUnavailable, "chunk not held");
            self.send(now, conn, Message::Warning(n.clone()));
            self.emit(NodeEvent::Problem(n));
            if let Some(c) = self.contents.get_mut(&content)
                && c.have.remove(chunk)
            {
                self.unprovide(now, content, chunk, chunk.saturating_add(1));
            }
            self.stats.transfers_failed += 1;
            self.emit(NodeEvent::TransferFailed { token, reason: "chunk unavailable".into() });
            return;
        };
        if self.cfg.corrupt_uploads {
            payload = corrupt(payload);
        }
        let bytes = payload.len();
        self.send(now, conn, Message::Data(Data { token, content, chunk, payload }));
        self.stats.bytes_uploaded += u64::from(bytes);
        self.stats.chunks_uploaded += 1;
        self.emit(NodeEvent::Uploaded { content, chunk, to, bytes });
        // Our part is done; only a rejecting verdict can still concern this chunk.
        if self.orders.remove(&token).is_some() {
            let until = now + self.cfg.transfer_timeout;
            self.orders.record_served(now, Served { token, content, chunk, other: to, until });
        }
    }

    /// The tracker's verdict on a chunk we served; a rejection makes us re-verify our copy.
    ///
    /// The tracker sends one only on rejection (docs/protocol.md §3): usually for a chunk we
    /// served, sometimes for an order that failed before we sent anything.
    pub(super) fn on_verdict(&mut self, now: Time, token: Token, accepted: bool) {
        let o = match self.orders.take_served(&token) {
            Some(s) => s,
            None => match self.orders.get(&token) {
                Some(o) if o.side == crate::wire::Side::Giver => {
                    let Some(o) = self.orders.remove(&token) else { return };
                    Served { token, content: o.content, chunk: o.chunk, other: o.other, until: now }
                }
                _ => return,
            },
        };
        if accepted {
            return;
        }
        let Some(c) = self.contents.get(&o.content) else { return };
        if !c.have.contains(o.chunk) {
            // Already gone (a live window slid past it): nothing to re-check.
            let (content, chunk, to) = (o.content, o.chunk, o.other);
            return self.emit(NodeEvent::VerdictRejected { content, chunk, to, dropped: false });
        }
        let expected = c.manifest.hash(o.chunk).copied();
        let len = c.manifest.geometry.chunk_len(o.chunk);
        let intact = match (self.store.read(o.content, o.chunk), expected) {
            (Ok(p), Some(h)) => p.verify(len, &h),
            _ => false,
        };
        if !intact {
            if let Some(c) = self.contents.get_mut(&o.content) {
                c.have.remove(o.chunk);
            }
            if let Err(e) = self.store.discard(o.content, o.chunk) {
                self.emit(NodeEvent::Problem(Notice::new(ErrorCode::Unexpected, e.to_string())));
            }
            self.unprovide(now, o.content, o.chunk, o.chunk.saturating_add(1));
        }
        self.emit(NodeEvent::VerdictRejected {
            content: o.content,
            chunk: o.chunk,
            to: o.other,
            dropped: !intact,
        });
    }
}

impl<S: ChunkStore, E: From<NodeEvent>> Node<S, E> {
    /// Withdraws every content of which we hold something whose bytes changed under us
    /// (the store's [`ChunkStore::changed`]), without waiting for a taker to ask for it.
    pub(crate) fn withdraw_changed(&mut self, now: Time) {
        let held: Vec<ContentId> =
            self.contents.iter().filter(|(_, c)| !c.have.is_empty()).map(|(&id, _)| id).collect();
        for content in held {
            if let Some(why) = self.store.changed(content) {
                self.withdraw(now, content, why);
            }
        }
    }

    /// Stops serving `content`, whose bytes changed under us: nothing of it is held any
    /// more, the tracker is told so in one `Unprovide`, and the operator why. Serving the
    /// new bytes would only fail every taker's hash check (the manifest is the old one).
    fn withdraw(&mut self, now: Time, content: ContentId, why: String) {
        let Some(c) = self.contents.get_mut(&content) else { return };
        let chunks = c.manifest.geometry.num_chunks();
        c.have.remove_range(0, chunks);
        self.unprovide(now, content, 0, chunks);
        self.emit(NodeEvent::Withdrawn { content, why });
    }
}

/// Fault injection: flips the first byte (or the tag) so the taker's check fails.
fn corrupt(p: Payload) -> Payload {
    match p {
        Payload::Real(b) => {
            let mut v = b.to_vec();
            match v.first_mut() {
                Some(x) => *x ^= 0xff,
                None => v.push(0),
            }
            Payload::Real(v.into())
        }
        Payload::Virtual { len, mut tag } => {
            tag.0[0] ^= 0xff;
            Payload::Virtual { len, tag }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Digest;

    #[test]
    fn corruption_changes_real_and_virtual_payloads() {
        let real = Payload::Real(bytes::Bytes::from_static(b"abc"));
        assert_ne!(corrupt(real.clone()).digest(), real.digest());
        assert_eq!(corrupt(real.clone()).len(), 3);
        let v = Payload::Virtual { len: 9, tag: Digest::of(b"x") };
        assert_ne!(corrupt(v.clone()).digest(), v.digest());
        assert_eq!(corrupt(Payload::Real(bytes::Bytes::new())).len(), 1);
    }
}
