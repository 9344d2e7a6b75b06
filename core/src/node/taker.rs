//! The taker's transfer mechanics: start, receive, verify against the manifest, store,
//! report `Completed`. What a verified chunk means (delivery, live windows) is the peer's.

use super::orders::Phase;
use super::{Arrival, Node, NodeEvent};
use crate::ids::{ConnId, PeerId, Token};
use crate::payload::Payload;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{Completed, Data, ErrorCode, Message, Method, Notice, Side, TransferOrder};

impl<S: ChunkStore, E: From<NodeEvent>> Node<S, E> {
    /// An order to take a chunk: connect and `Get`, or wait for the giver's `Put`.
    pub(super) fn taker_order(&mut self, now: Time, o: TransferOrder) {
        let token = o.token;
        let known = self
            .contents
            .get(&o.content)
            .map(|c| (c.manifest.num_chunks(), c.manifest.hash(o.chunk).copied()));
        let Some((n, hash)) = known else {
            return self.reject_order(now, token, "order for an unknown content");
        };
        if o.chunk >= n {
            return self.reject_order(now, token, "order for a chunk past the end");
        }
        if self.holds(o.content, o.chunk) {
            // Already held: report the manifest hash at once, without moving data.
            self.send_tracker(now, Message::Completed(Completed { token, hash, copy_us: 0 }));
            return;
        }
        match (o.method, &o.connect) {
            (Method::Get, Some(_)) | (Method::Put, None) => self.start_order(now, o),
            _ => self.reject_order(now, token, "inconsistent taker order"),
        }
    }

    /// Completes an order we cannot run with `Completed(None)`.
    fn reject_order(&mut self, now: Time, token: Token, why: &str) {
        self.send_tracker(now, Message::Completed(Completed { token, hash: None, copy_us: 0 }));
        self.stats.transfers_failed += 1;
        self.emit(NodeEvent::Problem(Notice::about(token, ErrorCode::Unexpected, why)));
        self.emit(NodeEvent::TransferFailed { token, reason: why.to_string() });
    }

    /// The transfer is under way: note when (for `Completed`'s `copy_us`) and arm the
    /// completion watchdog.
    pub(super) fn started(&mut self, now: Time, token: Token) {
        let Some(o) = self.orders.get_mut(&token) else { return };
        o.phase = Phase::Moving;
        o.moving_since = now;
        let deadline = moving_deadline(&self.cfg, now, now);
        self.orders.set_deadline(&token, deadline);
    }

    /// Bytes arrived on `conn`: every copy under way on it has moved.
    pub(super) fn progressed(&mut self, now: Time, conn: ConnId) {
        if self.cfg.progress_timeout.is_none() {
            return;
        }
        let cfg = &self.cfg;
        self.orders.retime_on_conn(conn, |o| {
            (o.side == Side::Taker && o.phase == Phase::Moving)
                .then(|| moving_deadline(cfg, o.moving_since, now))
        });
    }

    /// `Data` on a peer link: take it if it belongs to a moving order on this link.
    pub(super) fn on_data(&mut self, now: Time, conn: ConnId, _remote: PeerId, data: Data) {
        let token = data.token;
        let fits = self.orders.get(&token).is_some_and(|o| {
            o.side == Side::Taker
                && o.phase == Phase::Moving
                && o.conn == Some(conn)
                && o.content == data.content
                && o.chunk == data.chunk
        });
        if fits {
            return self.take_data(now, token, data.payload);
        }
        // The payload following a `Put` still waiting for its order.
        if let Some(h) =
            self.orders.held.iter_mut().find(|h| {
                h.req.token == token && h.conn == conn && h.method == Method::Put && h.data.is_none()
            })
        {
            if h.req.content == data.content && h.req.chunk == data.chunk {
                h.data = Some(data.payload);
            }
            return;
        }
        // Late data for a transfer we already gave up on: drop it.
        let n = Notice::about(token, ErrorCode::Unexpected, "data for no transfer in progress");
        self.emit(NodeEvent::Problem(n));
    }

    /// Verifies a payload against the manifest, stores it if good, reports `Completed`.
    pub(super) fn take_data(&mut self, now: Time, token: Token, payload: Payload) {
        let Some(o) = self.orders.remove(&token) else { return };
        let Some(c) = self.contents.get(&o.content) else {
            self.send_tracker(now, Message::Completed(Completed { token, hash: None, copy_us: 0 }));
            return;
        };
        let expected_len = c.manifest.geometry.chunk_len(o.chunk);
        let expected = c.manifest.hash(o.chunk).copied();
        let already = c.have.contains(o.chunk);
        // Hash once: the same digest is checked and reported.
        let digest = payload.digest();
        let verified = payload.len() == expected_len && Some(digest) == expected;
        if verified && !already {
            if let Err(e) = self.store.write(o.content, o.chunk, &payload) {
                self.send_tracker(now, Message::Completed(Completed { token, hash: None, copy_us: 0 }));
                self.emit(NodeEvent::Problem(Notice::new(ErrorCode::Unexpected, e.to_string())));
                self.stats.transfers_failed += 1;
                self.emit(NodeEvent::TransferFailed { token, reason: "store write failed".into() });
                return;
            }
            if let Some(c) = self.contents.get_mut(&o.content) {
                c.have.insert(o.chunk);
            }
        }
        // Saturates at 71 minutes, far beyond any transfer timeout.
        let copy_us = u32::try_from(now.saturating_since(o.moving_since).as_micros()).unwrap_or(u32::MAX);
        self.send_tracker(now, Message::Completed(Completed { token, hash: Some(digest), copy_us }));
        if already {
            return;
        }
        if verified {
            self.stats.bytes_downloaded += u64::from(payload.len());
            self.stats.chunks_verified += 1;
        } else {
            self.stats.chunks_rejected += 1;
        }
        self.arrivals.push(Arrival { content: o.content, chunk: o.chunk, from: o.other, payload, verified });
    }
}

/// When a copy under way since `since`, last seen moving at `moved`, fails: at its
/// `transfer_timeout`, or sooner when nothing arrives for `progress_timeout`.
fn moving_deadline(cfg: &super::NodeConfig, since: Time, moved: Time) -> Time {
    let whole = since + cfg.transfer_timeout;
    cfg.progress_timeout.map_or(whole, |p| whole.min(moved + p))
}
