//! The loop's socket work: events, accepting, reading and decoding, carrying out the
//! machines' transmissions, flushing under the rate limits.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::Token;
use mio::event::Event;
use pdtp_core::wire::codec::{self, Decoder, Limits as CodecLimits};
use pdtp_core::wire::{Data, Notice};
use pdtp_core::{ConnId, Dial, Message, Payload, Time, Transmit};

use super::{CLOSE_LINGER, CONN_TOKEN_BASE, FRAME_CHECK_EVERY, Link, OVERFLOW, Partial, Runtime, resolve};
use crate::conn::{Conn, FileRange};
use crate::secure::SecureLink;

impl Runtime {
    /// One readiness event.
    pub(super) fn dispatch(&mut self, event: &Event, now: Instant) {
        let token = event.token();
        if token.0 < CONN_TOKEN_BASE {
            let Some(&(node, listener)) = self.fixed.get(&token.0) else { return };
            if listener {
                self.accept(node, now);
            } else {
                self.with_cx(node, now, |h, cx| h.extra_event(cx, event));
            }
            return;
        }
        let t = self.clock.time(now);
        let Some(conn) = self.table.get_mut(token) else { return };
        match conn.on_ready(event) {
            Ok(true) => {
                if let Some(link) = self.links.get(&token)
                    && let Some(Some(slot)) = self.nodes.get_mut(link.node)
                    && slot.conns.contains_key(&link.conn)
                {
                    tracing::trace!(conn = link.conn.0, "connected");
                    slot.node.hosted().handle_connected(t, link.conn);
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "connection failed");
                if let Some(link) = self.links.get(&token)
                    && let Some(Some(slot)) = self.nodes.get_mut(link.node)
                {
                    slot.connect_error = Some(e.to_string());
                }
                self.fail(token, t);
                return;
            }
        }
        self.pending.insert(token);
        self.dirty.insert(token);
    }

    /// Accepts everything waiting on a node's listener.
    fn accept(&mut self, node: usize, now: Instant) {
        let t = self.clock.time(now);
        let Runtime { nodes, table, links, poll, pending, closing, dirty, .. } = self;
        let Some(Some(slot)) = nodes.get_mut(node) else { return };
        let Some(listener) = slot.listener.as_ref() else { return };
        // Every link is encrypted from its first byte: a refusal is said inside it.
        let key = slot.node.hosted_ref().link_key().cloned();
        let accepted = table.accept_all(listener, poll.registry(), now, true);
        let mut refusals: Vec<(Token, Notice)> =
            accepted.refused.into_iter().map(|t| (t, crate::table::overloaded(table.max()))).collect();
        for token in accepted.kept {
            let Some(c) = table.get_mut(token) else { continue };
            // An IPv4 client of a dual-stack listener is named by its IPv4 address.
            let peer = c.peer_addr();
            let remote = peer.map(|a| a.ip().to_canonical().to_string()).unwrap_or_default();
            let limited = !slot.node.is_tracker();
            match slot.node.hosted().accept_from(t, remote, peer.map(|a| a.port())) {
                Ok(conn) => {
                    tracing::trace!(conn = conn.0, "accepted");
                    slot.conns.insert(conn, token);
                    links.insert(token, new_link(node, conn, limited, Some(accepted_link(key.as_ref()))));
                    pending.insert(token);
                }
                // Over the machine's cap.
                Err(notice) => refusals.push((token, notice)),
            }
        }
        // Say why, then close after the flush; an encrypted link says it once its
        // handshake is done (see read_pending).
        for (token, notice) in refusals {
            let Some(c) = table.get_mut(token) else { continue };
            let mut link = new_link(node, ConnId(u32::MAX), false, Some(accepted_link(key.as_ref())));
            queue_message(c, &mut link, &Message::Error(notice));
            links.insert(token, link);
            closing.insert(token, now + CLOSE_LINGER);
            dirty.insert(token);
            pending.insert(token);
        }
    }

    /// Reads and decodes every connection due for it.
    pub(super) fn read_pending(&mut self, now: Instant) {
        let t = self.clock.time(now);
        let mut failed = Vec::new();
        for token in std::mem::take(&mut self.pending) {
            // A closing link is read no more, unless its handshake must finish first for a
            // refusal to be said on it.
            let handshaking =
                self.links.get(&token).is_some_and(|l| l.secure.as_ref().is_some_and(|s| !s.is_open()));
            if self.closing.contains_key(&token) && !handshaking {
                continue;
            }
            if let Err(()) = self.read_one(token, now, t) {
                failed.push(token);
            }
        }
        // Orders that came on tracker links may hold the keys of accepted peer links.
        if std::mem::take(&mut self.orders_came) {
            for token in std::mem::take(&mut self.awaiting_key) {
                if let Err(()) = self.read_one(token, now, t) {
                    failed.push(token);
                }
            }
        }
        for token in failed {
            self.fail(token, t);
        }
    }

    /// Fills one connection (within the download budget) and hands each frame to its machine.
    /// `Err` when the connection is finished (error or end of stream).
    fn read_one(&mut self, token: Token, now: Instant, t: Time) -> Result<(), ()> {
        let Runtime {
            nodes,
            links,
            table,
            closing,
            pending,
            parked,
            dirty,
            frame_check,
            awaiting_key,
            orders_came,
            ..
        } = self;
        let Some(link) = links.get_mut(&token) else { return Ok(()) };
        let Some(Some(slot)) = nodes.get_mut(link.node) else { return Err(()) };
        let Some(conn) = table.get_mut(token) else { return Ok(()) };
        if conn.over_cap() {
            // Backpressure: read nothing more (no more requests) until the output drains.
            return Ok(());
        }
        let limited = link.limited;
        let budget = match slot.limiter.down.as_mut().filter(|_| limited) {
            Some(b) => usize::try_from(b.available(now)).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        if budget == 0 {
            if conn.may_read()
                && let Some(b) = slot.limiter.down.as_mut()
            {
                park(parked, token, b.ready_at(1, now));
            }
            return Ok(());
        }
        let fill = match &mut link.secure {
            // Straight into the decoder's buffer: a payload is copied once, from the kernel.
            None => link.decoder.fill_with(|buf| conn.fill_into(buf, budget)),
            // Sealed bytes wait in `wire` only until they are opened; a peer link whose
            // order's secret is not known yet holds what came, up to a bound, unread.
            Some(_) => {
                let room = WIRE_LIMIT.saturating_sub(link.wire.len());
                conn.fill_into(&mut link.wire, budget.min(room))
            }
        };
        let fill = match fill {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "read failed");
                return Err(());
            }
        };
        let Link { decoder, wire, secure, conn: link_conn, .. } = &mut *link;
        let tracker_link = !slot.node.is_tracker() && slot.tracker_conn == Some(*link_conn);
        if let Some(secure) = secure {
            let mut out = Vec::new();
            // An accepted peer link names its secret first: an order of ours must hold it.
            if let Some(id) = secure.wanted_key(wire) {
                match slot.node.hosted_ref().peer_link_key(&id) {
                    Some(key) => {
                        awaiting_key.remove(&token);
                        if secure.accept_key(wire, &key, &mut out).is_err() {
                            return Err(());
                        }
                    }
                    None => {
                        awaiting_key.insert(token);
                        return Ok(());
                    }
                }
            }
            let opened = decoder.fill_with(|buf| secure.open(wire, buf, &mut out));
            if let Err(e) = opened {
                tracing::debug!(error = %e, peer = ?conn.peer_addr(), "encrypted link failed");
                if tracker_link {
                    slot.connect_error = Some(e.to_string());
                    slot.link_failure = Some(e);
                }
                return Err(());
            }
            for bytes in out {
                conn.send(bytes);
                dirty.insert(token);
            }
            if tracker_link {
                slot.tracker_key = slot.tracker_key.or(secure.remote_key());
            }
        }
        if fill.bytes > 0 {
            if !tracker_link && !slot.node.is_tracker() && slot.conns.contains_key(link_conn) {
                slot.node.hosted().handle_progress(t, *link_conn);
            }
            slot.limiter.down_meter.record(fill.bytes as u64, now);
            if let Some(b) = slot.limiter.down.as_mut().filter(|_| limited) {
                b.consume(fill.bytes as u64, now);
            }
        }
        let still_readable = conn.may_read();
        let conn_id = link.conn;
        let mut got_any = false;
        loop {
            match link.decoder.next() {
                Ok(Some(msg)) => {
                    got_any = true;
                    if !matches!(msg, Message::Data(_)) {
                        tracing::trace!(conn = conn_id.0, ?msg, "received");
                    }
                    if slot.conns.contains_key(&conn_id) {
                        slot.node.hosted().handle_message(t, conn_id, msg);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "malformed frame; closing that connection");
                    if slot.conns.contains_key(&conn_id)
                        && !slot.node.hosted().handle_malformed(t, conn_id, &e)
                    {
                        slot.conns.remove(&conn_id);
                        if let Some(c) = table.get_mut(token) {
                            queue_message(c, link, &Message::Error(e.notice()));
                        }
                        closing.insert(token, now + CLOSE_LINGER);
                        dirty.insert(token);
                        slot.node.hosted().handle_closed(t, conn_id);
                    }
                    return Ok(());
                }
            }
        }
        if got_any {
            table.hello_received(token);
            *orders_came |= tracker_link;
        }
        // A frame begun in this read starts its clock now; one still in progress adds the
        // bytes that came (an approximation when one frame ended and the next began).
        let buffered = (link.decoder.buffered() + link.wire.len()) as u64;
        link.partial = match (buffered, link.partial) {
            (0, _) => None,
            (_, Some(p)) if !got_any => Some(Partial { bytes: p.bytes + fill.bytes as u64, ..p }),
            (buffered, _) => Some(Partial { since: now, bytes: buffered }),
        };
        if link.partial.is_some() && frame_check.is_none() {
            *frame_check = Some(now + FRAME_CHECK_EVERY);
        }
        if fill.eof {
            return Err(());
        }
        if still_readable {
            match slot.limiter.down.as_mut().filter(|_| limited && fill.bytes >= budget) {
                Some(b) => park(parked, token, b.ready_at(1, now)),
                None => {
                    // Stopped at the read limit: come back next turn, after the others.
                    pending.insert(token);
                }
            }
        }
        Ok(())
    }

    /// Carries out node `i`'s transmissions; returns whether there were any.
    pub(super) fn drain_transmits(&mut self, i: usize, now: Instant) -> bool {
        let t = self.clock.time(now);
        let Runtime { nodes, links, table, closing, dirty, pending, poll, .. } = self;
        let Some(Some(slot)) = nodes.get_mut(i) else { return false };
        let mut any = false;
        let mut failed = Vec::new();
        while let Some(tx) = slot.node.hosted().poll_transmit() {
            any = true;
            match tx {
                Transmit::Send { conn, msg } => {
                    let Some(&token) = slot.conns.get(&conn) else { continue };
                    if let (Some(c), Some(link)) = (table.get_mut(token), links.get_mut(&token)) {
                        match &msg {
                            Message::Data(d) => match slot.node.hosted_ref().file_payload(d) {
                                Some(range) if link.secure.is_none() => queue_file_data(c, d, range),
                                _ => queue_message(c, link, &msg),
                            },
                            _ => {
                                tracing::trace!(conn = conn.0, queued = c.queued(), ?msg, "sent");
                                queue_message(c, link, &msg);
                            }
                        }
                        dirty.insert(token);
                    }
                }
                Transmit::Connect { conn, endpoint, key, dial } => {
                    let tracker_link = slot.node.hosted_ref().tracker() == Some(&endpoint);
                    if tracker_link {
                        slot.tracker_conn = Some(conn);
                    }
                    // The tracker link and hole punches leave from the listening port.
                    let from = match dial {
                        Dial::Plain => None,
                        Dial::FromListenPort | Dial::Punch { .. } => {
                            slot.listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
                        }
                    };
                    let accepting = matches!(dial, Dial::Punch { accepting: true });
                    let result = match resolve(&endpoint.host, endpoint.port) {
                        Some(addr) => {
                            table.connect_from(addr, from, poll.registry()).map_err(|e| e.to_string())
                        }
                        None => Err(format!("cannot resolve {endpoint}")),
                    };
                    match result {
                        Ok(token) => {
                            tracing::trace!(conn = conn.0, %endpoint, "connecting");
                            slot.conns.insert(conn, token);
                            let limited = !slot.node.is_tracker() && !tracker_link;
                            // The link to the tracker is encrypted: its first handshake message
                            // goes out as soon as the connect completes.
                            // A reconnection requires the key the tracker proved first.
                            let pin = slot.node.hosted_ref().tracker_pin().or(slot.tracker_key);
                            let opened = match (tracker_link, &key) {
                                // The giver's end of a hole punch: the taker sends the link
                                // id, as to a link the giver accepted.
                                _ if accepting => Ok((SecureLink::peer_accepting(), Bytes::new())),
                                (true, _) => SecureLink::initiator(pin).map_err(|e| e.to_string()),
                                (false, Some(key)) => Ok(SecureLink::peer_connecting(key)),
                                (false, None) => Err("a peer link without its order's secret".to_owned()),
                            };
                            let secure = match opened {
                                Ok((secure, first)) => {
                                    if let Some(c) = table.get_mut(token).filter(|_| !first.is_empty()) {
                                        c.send(first);
                                    }
                                    Some(secure)
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot start an encrypted link");
                                    None
                                }
                            };
                            links.insert(token, new_link(i, conn, limited, secure));
                            dirty.insert(token);
                        }
                        Err(e) => {
                            tracing::debug!(%endpoint, error = %e, "connect failed");
                            slot.connect_error = Some(e);
                            failed.push(conn);
                        }
                    }
                }
                Transmit::Close { conn, .. } => {
                    if let Some(token) = slot.conns.remove(&conn) {
                        closing.insert(token, now + CLOSE_LINGER);
                        dirty.insert(token);
                        pending.remove(&token);
                    }
                }
            }
        }
        for conn in failed {
            slot.node.hosted().handle_closed(t, conn);
        }
        any
    }

    /// Flushes connections with output, within the upload budget; updates interest.
    pub(super) fn flush_dirty(&mut self, now: Instant) {
        let t = self.clock.time(now);
        let mut failed = Vec::new();
        let mut finished = Vec::new();
        {
            let Runtime { nodes, links, table, closing, dirty, pending, parked, poll, .. } = self;
            for token in std::mem::take(dirty) {
                let Some(link) = links.get(&token) else { continue };
                let Some(Some(slot)) = nodes.get_mut(link.node) else { continue };
                let Some(c) = table.get_mut(token) else { continue };
                let was_over = c.over_cap();
                let up = slot.limiter.up.as_mut().filter(|_| link.limited);
                let budget = match &up {
                    Some(_) if c.queued() == 0 => 0,
                    Some(_) => {
                        up.map_or(usize::MAX, |b| usize::try_from(b.available(now)).unwrap_or(usize::MAX))
                    }
                    None => usize::MAX,
                };
                let written = if budget == 0 {
                    0
                } else {
                    match c.flush(budget) {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::debug!(error = %e, "write failed");
                            failed.push(token);
                            continue;
                        }
                    }
                };
                if written > 0 {
                    slot.limiter.up_meter.record(written as u64, now);
                    if let Some(b) = slot.limiter.up.as_mut().filter(|_| link.limited) {
                        b.consume(written as u64, now);
                    }
                }
                if c.may_write()
                    && let Some(b) = slot.limiter.up.as_mut().filter(|_| link.limited)
                {
                    // Out of upload credit: wake when enough for the next segment has come.
                    park(parked, token, b.ready_at(c.queued() as u64, now));
                }
                if c.queued() > OVERFLOW {
                    // A peer that does not read: never buffer for it without bound.
                    tracing::warn!(peer = ?c.peer_addr(), queued = c.queued(), "output overflow; closing");
                    failed.push(token);
                    continue;
                }
                if was_over && !c.over_cap() {
                    pending.insert(token);
                }
                let said = link.secure.as_ref().is_none_or(SecureLink::is_open);
                if closing.contains_key(&token) && c.queued() == 0 && said {
                    finished.push(token);
                    continue;
                }
                if let Err(e) = c.update_interest(poll.registry()) {
                    tracing::warn!(error = %e, "cannot update interest");
                    failed.push(token);
                }
            }
        }
        for token in finished {
            self.closing.remove(&token);
            self.links.remove(&token);
            self.table.remove(token, self.poll.registry());
        }
        for token in failed {
            self.fail(token, t);
        }
    }

    /// Closes a connection that failed and tells its machine.
    pub(super) fn fail(&mut self, token: Token, t: Time) {
        self.table.remove(token, self.poll.registry());
        self.forget(token, t);
    }
}

/// Parks `token` until `at` (the earliest of two parkings wins).
fn park(parked: &mut BTreeMap<Token, Instant>, token: Token, at: Instant) {
    let e = parked.entry(token).or_insert(at);
    *e = (*e).min(at);
}

/// The encryption of a link a node accepted: a tracker answers the Noise handshake with its
/// key; a seed or peer waits for the peer link's id and looks its secret up.
fn accepted_link(tracker_key: Option<&crate::secure::TrackerKey>) -> SecureLink {
    tracker_key.map_or_else(SecureLink::peer_accepting, SecureLink::responder)
}

/// Sealed bytes a link holds unopened at most: records are opened as they come, so only a
/// peer link waiting for its order's secret gets near it (an honest one sends a `Hello` and
/// a `Get`, or a `Put` and one chunk, before it hears back).
const WIRE_LIMIT: usize = 1 << 20;

fn new_link(node: usize, conn: ConnId, limited: bool, secure: Option<SecureLink>) -> Link {
    // Virtual payloads stay off: this runtime stores real bytes (docs/protocol.md §2).
    let decoder = Decoder::new(CodecLimits::DEFAULT);
    Link { node, conn, decoder, limited, partial: None, secure, wire: BytesMut::new() }
}

/// Queues a `Data` frame whose payload is sent from a file: the frame head from memory, then
/// the file range with `sendfile(2)` (the bytes never enter this process).
fn queue_file_data(conn: &mut Conn, d: &Data, range: FileRange) {
    let mut head = BytesMut::new();
    match codec::encode_data_header(d, &mut head) {
        Ok(()) => {
            conn.send(head.freeze());
            conn.send_file(range);
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode a data frame"),
    }
}

/// Encodes `msg` onto `conn`'s output queue; a real chunk payload is queued as its own
/// segment after the frame head, without a copy. On an encrypted link the frame is sealed
/// into records first.
fn queue_message(conn: &mut Conn, link: &mut Link, msg: &Message) {
    if let Some(secure) = &mut link.secure {
        let mut frame = BytesMut::new();
        let mut out = Vec::new();
        let sealed = match msg {
            // The frame head and the chunk's bytes, sealed without joining them first.
            Message::Data(d) if let Payload::Real(bytes) = &d.payload => {
                codec::encode_data_header(d, &mut frame)
                    .map_err(|e| e.to_string())
                    .and_then(|()| secure.seal_parts(&[&frame, bytes], &mut out).map_err(|e| e.to_string()))
            }
            _ => codec::encode(msg, &mut frame)
                .map_err(|e| e.to_string())
                .and_then(|()| secure.seal(&frame, &mut out).map_err(|e| e.to_string())),
        };
        match sealed {
            Ok(()) => out.into_iter().for_each(|b| conn.send(b)),
            Err(e) => tracing::warn!(error = %e, kind = msg.kind(), "cannot send on an encrypted link"),
        }
        return;
    }
    let mut head = BytesMut::new();
    if let Message::Data(d) = msg
        && let Payload::Real(bytes) = &d.payload
    {
        match codec::encode_data_header(d, &mut head) {
            Ok(()) => {
                conn.send(head.freeze());
                conn.send(bytes.clone());
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode a data frame"),
        }
        return;
    }
    match codec::encode(msg, &mut head) {
        Ok(()) => conn.send(head.freeze()),
        Err(e) => tracing::warn!(error = %e, kind = msg.kind(), "cannot encode a message"),
    }
}
