//! Hello, info, publishing, live appends and departures.

use rand_core::Rng as _;

use super::state::{Content, Load, Node, NodeIdx, Signed};
use super::{Tracker, TrackerEvent};
use crate::auth;
use crate::ids::{ConnId, Endpoint, PeerId};
use crate::manifest::{Digest, LiveInfo};
use crate::signing::Chain;
use crate::time::Time;
use crate::wire::{
    AppendChunks, ErrorCode, Hello, Message, Notice, PROTOCOL_VERSION, Publish, Published, Role, TellInfo,
    Welcome,
};

impl Tracker {
    pub(super) fn on_hello(&mut self, now: Time, conn: ConnId, hello: Hello) {
        if hello.version != PROTOCOL_VERSION {
            let detail = format!(
                "protocol version {} is not supported (this tracker speaks {PROTOCOL_VERSION})",
                hello.version
            );
            return self.close_with(conn, Notice::new(ErrorCode::BadVersion, detail));
        }
        if self.by_id.contains_key(&hello.peer_id) {
            let detail = format!("{} is already connected", hello.peer_id);
            return self.close_with(conn, Notice::new(ErrorCode::DuplicatePeerId, detail));
        }
        let Some(state) = self.conns.get_mut(&conn) else { return };
        let endpoint = hello.listen_port.map(|port| Endpoint { host: state.remote_host.clone(), port });
        // A node that listens dials the tracker from its listening port (`Dial::FromListenPort`).
        let punch_at = hello
            .listen_port
            .and(state.remote_port)
            .map(|port| Endpoint { host: state.remote_host.clone(), port });
        // A departed node's index if there is one: what the tracker keeps per node is bounded
        // by the nodes connected at once (`max_connections`), however many come and go.
        let idx = self.free_nodes.pop().unwrap_or(NodeIdx(self.nodes.len() as u32));
        // Mute (`mute_conns`) until it says something beyond hello.
        state.node = Some(idx);
        self.silent_conns = self.silent_conns.saturating_sub(1);
        self.mute_conns += 1;
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let trust_slot = self.trust.join(hello.peer_id);
        let node = Node {
            id: hello.peer_id,
            conn,
            role: hello.role,
            endpoint,
            reachable: None,
            punch_at,
            nonce,
            orders: Vec::new(),
            contents: Vec::new(),
            viewing: Vec::new(),
            bytes_up: 0,
            bytes_down: 0,
            joined: now,
            trust_slot,
            dirty: false,
            idle: false,
            reused: (idx.0 as usize) < self.nodes.len(),
        };
        self.by_id.insert(hello.peer_id, idx);
        // A giver that failed before keeps its record (and its ban) across reconnections, and
        // a new identity from a banned giver's address starts banned.
        let host_banned = self.conns.get(&conn).is_some_and(|c| self.banned_hosts.contains(&c.group));
        let banned = self.is_ban_worthy(hello.peer_id)
            || self.banned_ids.contains(&hello.peer_id)
            || (self.config.ban_hosts && host_banned);
        let host = self.host_index(conn);
        let load = Load {
            alive: true,
            seed: hello.role == Role::Seed,
            // With probes, dialled only once its probe opened (a node joining has nothing to
            // give yet, so little waits for that).
            listens: hello.listen_port.is_some() && self.config.reach_probe.is_none(),
            banned,
            up_slots: match self.config.upload_slots {
                super::UploadSlots::Measured { .. } => self.config.unmeasured_slots.max(1),
                super::UploadSlots::Fixed => 0,
            },
            host,
            ..Load::default()
        };
        let probe = node.endpoint.clone();
        self.place_node(idx, node, load);
        if let Some(endpoint) = probe {
            self.probe(now, idx, hello.peer_id, endpoint);
        }
        self.send(conn, Message::Welcome(Welcome { peer_id: hello.peer_id, nonce }));
        self.events.push_back(TrackerEvent::Joined { peer: hello.peer_id, role: hello.role });
    }

    pub(super) fn on_ask_info(&mut self, idx: NodeIdx, conn: ConnId, path: &str) {
        let path = path.trim_start_matches('/');
        let Some(&ci) = self.by_path.get(path) else {
            return self.warn(conn, ErrorCode::UnknownUrl, format!("nothing is published at '{path}'"));
        };
        let content = &mut self.contents[ci];
        if content.withdrawn && content.supply.count() < content.num_chunks() {
            let detail = format!(
                "nothing is published at '{path}' now: its seed withdrew it (it changed at its source) \
                 and has not published it again"
            );
            return self.warn(conn, ErrorCode::UnknownUrl, detail);
        }
        content.viewers.insert(idx);
        let signature = content.signed.map(|s| s.latest);
        let tell = TellInfo { content: content.id, manifest: content.manifest.clone(), signature };
        let msg = Message::TellInfo(Box::new(tell));
        let end_mark = content.end_mark.clone();
        let id = content.id;
        if let Some(n) = self.node_mut(idx)
            && !n.viewing.contains(&id)
        {
            n.viewing.push(id);
        }
        self.send(conn, msg);
        // A viewer who asks after the stream ended is told so at once, as the others were.
        if let Some(end) = end_mark {
            self.send(conn, Message::AppendChunks(Box::new(end)));
        }
    }

    /// Registers `manifest` as the content of `path` (a new id), published by `seed_id`.
    fn new_content(
        &mut self,
        now: Time,
        path: String,
        mut manifest: crate::manifest::Manifest,
        seed_id: PeerId,
        signed: Option<Signed>,
    ) -> usize {
        let ci = self.contents.len();
        let id = super::content_id_for(&path, |id| self.by_content.contains_key(&id));
        self.by_content.insert(id, ci as u32);
        manifest.path = path.clone();
        let mut content = Content::new(id, manifest, seed_id);
        content.signed = signed;
        if content.manifest.is_live() {
            content.appended.resize(content.num_chunks() as usize, now);
        }
        let (chunk_size, live) = (content.manifest.geometry.chunk_size, content.manifest.is_live());
        self.contents.push(content);
        self.by_path.insert(path.clone(), ci);
        self.events.push_back(TrackerEvent::Published { content: id, path, chunk_size, live });
        ci
    }

    pub(super) fn on_publish(&mut self, now: Time, idx: NodeIdx, conn: ConnId, publish: Publish) {
        let Some(node) = self.node(idx) else { return };
        if node.role != Role::Seed {
            return self.close_with(conn, Notice::new(ErrorCode::Unauthorized, "only a seed may publish"));
        }
        let expected =
            auth::publish_proof(&self.config.seed_key, &node.nonce, &publish.manifest, publish.uplink_bps);
        if !auth::proofs_equal(&expected, &publish.proof) {
            return self.close_with(
                conn,
                Notice::new(ErrorCode::Unauthorized, "publish proof does not match the tracker's seed key"),
            );
        }
        if let Err(e) = publish.manifest.check() {
            return self.close_with(conn, Notice::new(ErrorCode::Malformed, e.to_string()));
        }
        let signed = match publish.signature {
            None => None,
            Some(sig) => {
                let chain = Chain::of(&publish.manifest);
                if !sig.verifies(&chain.statement(publish.manifest.geometry.size, false)) {
                    return self.close_with(
                        conn,
                        Notice::new(ErrorCode::Unauthorized, "the manifest's seed signature does not verify"),
                    );
                }
                Some(Signed { chain, latest: sig })
            }
        };
        let seed_id = node.id;
        if let Some(bps) = publish.uplink_bps {
            let geometry = &publish.manifest.geometry;
            self.take_stated_uplink(idx, bps, geometry.chunk_size, publish.manifest.is_live());
        }
        let path = publish.manifest.path.trim_start_matches('/').to_string();
        let ci = match self.by_path.get(&path) {
            Some(&ci) => {
                let known = &self.contents[ci];
                if known.manifest.root() != publish.manifest.root() {
                    // A live seed back after its link dropped, with chunks made meanwhile.
                    if let Some(a) = continuation(known, seed_id, &publish) {
                        self.extend_live(now, idx, conn, a);
                        let content = self.contents[ci].id;
                        return self.send(conn, Message::Published(Published { path, content }));
                    }
                    // Another seed still serving the version it published: two versions
                    // of one path at once would split its viewers, so the first stands. A
                    // live stream is never replaced: its seed coming back continues it
                    // (above), and a version in between would break that.
                    let publisher = self.by_id.get(&known.publisher).copied();
                    let live = known.manifest.is_live() || publish.manifest.is_live();
                    if live || publisher.is_some_and(|p| p != idx) {
                        let by = if live { "as a live stream" } else { "by a seed still connected" };
                        return self.warn(
                            conn,
                            ErrorCode::Unexpected,
                            format!("'{path}' is already published with a different manifest {by}"),
                        );
                    }
                    // A new version (the file changed and its seed published again, or a seed
                    // restarted with other settings): the path's new content from now on;
                    // viewers of the old version keep it and its holders.
                    self.new_content(now, path.clone(), publish.manifest, seed_id, signed)
                } else {
                    ci
                }
            }
            None => self.new_content(now, path.clone(), publish.manifest, seed_id, signed),
        };
        let content = &mut self.contents[ci];
        let id = content.id;
        let n = content.num_chunks();
        let start = content.window_start;
        if let Some(node) = self.nodes[idx.0 as usize].as_mut() {
            let reused = node.reused;
            let nc = node.content_entry(id, n);
            for c in start..n {
                if nc.have.insert(c) {
                    content.add_holder(c, idx, true, reused);
                }
            }
        }
        self.send(conn, Message::Published(Published { path, content: id }));
        self.mark_dirty(idx);
    }

    pub(super) fn on_append(&mut self, now: Time, idx: NodeIdx, conn: ConnId, a: AppendChunks) {
        let Some(node) = self.node(idx) else { return };
        let Some(content) = self.contents.get(self.ix(a.content)) else {
            return self.warn(conn, ErrorCode::UnknownContent, format!("no content {}", a.content.0));
        };
        if node.role != Role::Seed || node.id != content.publisher || content.manifest.live.is_none() {
            return self.close_with(
                conn,
                Notice::new(ErrorCode::Unauthorized, "only the publishing seed may append to a live stream"),
            );
        }
        let expected = auth::append_proof(
            &self.config.seed_key,
            &node.nonce,
            a.content,
            a.first,
            a.new_size,
            a.window_start,
            &a.hashes,
        );
        if !auth::proofs_equal(&expected, &a.proof) {
            return self.close_with(
                conn,
                Notice::new(ErrorCode::Unauthorized, "append proof does not match the tracker's seed key"),
            );
        }
        self.extend_live(now, idx, conn, a);
    }

    /// Appends `a`'s chunks (or its end mark) to a live stream, from its publishing seed at
    /// `idx` whose proof has been checked: its signature must extend the stream's chain.
    fn extend_live(&mut self, now: Time, idx: NodeIdx, conn: ConnId, a: AppendChunks) {
        let Some(content) = self.contents.get(self.ix(a.content)) else { return };
        let signed = match content.signed {
            None => None,
            Some(s) => {
                let mut chain = s.chain;
                for h in &a.hashes {
                    chain.push(h);
                }
                let statement = chain.statement(a.new_size, a.hashes.is_empty());
                match a.signature {
                    Some(sig) if sig.key == s.latest.key && sig.verifies(&statement) => {
                        Some(Signed { chain, latest: sig })
                    }
                    _ => {
                        return self.close_with(
                            conn,
                            Notice::new(
                                ErrorCode::Unauthorized,
                                "append not signed by the stream's seed key",
                            ),
                        );
                    }
                }
            }
        };
        if content.end_mark.is_some() {
            return self.warn(
                conn,
                ErrorCode::Unexpected,
                format!("append at chunk {} after the end", a.first),
            );
        }
        let old_n = content.num_chunks();
        let mut geometry = content.manifest.geometry;
        geometry.size = a.new_size;
        let new_n = geometry.num_chunks();
        if a.first != old_n
            || new_n as usize != old_n as usize + a.hashes.len()
            || a.new_size < content.manifest.geometry.size
        {
            return self.warn(
                conn,
                ErrorCode::Unexpected,
                format!("append of chunks {}.. does not follow the {old_n} chunks published", a.first),
            );
        }
        let ci = self.ix(a.content);
        let content = &mut self.contents[ci];
        if !a.hashes.is_empty() {
            // The end mark's signature (over an ended stream) travels with the end mark only.
            content.signed = signed.or(content.signed);
        }
        content.manifest.geometry = geometry;
        content.manifest.hashes.extend_from_slice(&a.hashes);
        let window_start = a.window_start.min(new_n);
        content.manifest.live = content.manifest.live.map(|l| LiveInfo { first_chunk: window_start, ..l });
        content.grow(new_n);
        content.appended.resize(new_n as usize, now);
        // Forget the per-chunk lists of chunks that left the window.
        for c in content.window_start..window_start {
            content.holders[c as usize] = Vec::new();
        }
        content.window_start = content.window_start.max(window_start);
        content.floor = content.floor.max(content.window_start);
        if let Some(seed) = self.nodes[idx.0 as usize].as_mut() {
            let reused = seed.reused;
            let nc = seed.content_entry(a.content, new_n);
            for c in old_n..new_n {
                if nc.have.insert(c) {
                    content.add_holder(c, idx, true, reused);
                }
            }
        }
        let open: Vec<_> = content.open_requesters.iter().copied().collect();
        for &v in &open {
            let Some(node) = self.nodes[v.0 as usize].as_mut() else { continue };
            let nc = node.content_entry(a.content, new_n);
            for c in old_n..new_n {
                if !nc.have.contains(c) && nc.want.insert(c) {
                    content.add_pending(c);
                }
            }
        }
        for v in open {
            self.mark_dirty(v);
        }
        let forward = AppendChunks { proof: Digest::ZERO, ..a };
        if forward.hashes.is_empty() {
            self.contents[ci].end_mark = Some(forward.clone());
        }
        let viewers: Vec<_> = self.contents[ci].viewers.iter().copied().collect();
        for v in viewers {
            if let Some(conn) = self.node(v).map(|n| n.conn) {
                self.send(conn, Message::AppendChunks(Box::new(forward.clone())));
            }
        }
        self.mark_dirty(idx);
    }

    /// Puts a new node at `idx`: a departed node's index (its entries reset) or the next one.
    fn place_node(&mut self, idx: NodeIdx, node: Node, load: Load) {
        let i = idx.0 as usize;
        if i < self.nodes.len() {
            self.nodes[i] = Some(node);
            self.loads[i] = load;
            self.up_rates[i] = 0.0;
            self.delivered[i] = super::transfers::Delivered::default();
        } else {
            self.nodes.push(Some(node));
            self.loads.push(load);
            self.up_rates.push(0.0);
            self.delivered.push(super::transfers::Delivered::default());
        }
    }

    /// Forgets a connection and everything its node was doing.
    pub(super) fn drop_conn(&mut self, conn: ConnId) {
        let Some(state) = self.conns.remove(&conn) else { return };
        if let Some(n) = self.host_conns.get_mut(&state.group) {
            *n -= 1;
            if *n == 0 {
                self.host_conns.remove(&state.group);
            }
        }
        let Some(idx) = state.node else {
            self.silent_conns = self.silent_conns.saturating_sub(1);
            return self.free_host_if_gone(&state.group);
        };
        if !state.spoke {
            self.mute_conns = self.mute_conns.saturating_sub(1);
        }
        let Some(node) = self.nodes[idx.0 as usize].take() else {
            return self.free_host_if_gone(&state.group);
        };
        self.loads[idx.0 as usize].alive = false;
        self.by_id.remove(&node.id);
        for token in &node.orders {
            self.cancel_transfer(*token, None, Some(idx));
        }
        for nc in &node.contents {
            let ci = self.ix(nc.content);
            let Some(content) = self.contents.get_mut(ci) else { continue };
            for c in nc.want.iter() {
                if !nc.inflight.contains(c) && c < content.num_chunks() {
                    content.remove_pending(c);
                }
            }
            for c in nc.have.iter() {
                if c < content.num_chunks() {
                    content.remove_holder(c, node.is_seed());
                }
            }
            content.viewers.remove(&idx);
            content.open_requesters.remove(&idx);
        }
        // Forget the index everywhere it waits, so the node that gets it next starts clean.
        // (Holder lists are checked against each node's own chunks when read.)
        let load = self.loads[idx.0 as usize];
        self.benched.remove(&(load.benched_until, idx));
        self.hungry.remove(&idx);
        self.dirty.retain(|&i| i != idx);
        self.idle_givers.retain(|&i| i != idx);
        if let Some(h) = self.hosts.get_mut(load.host as usize) {
            h.waiting.retain(|&i| i != idx);
        }
        self.free_nodes.push(idx);
        self.trust.depart(node.id);
        self.free_host_if_gone(&state.group);
        self.events.push_back(TrackerEvent::Left { peer: node.id });
    }

    /// Frees an address group's download count once nobody from it is connected (its
    /// nodes' orders are cancelled by then), for the next group to use.
    fn free_host_if_gone(&mut self, group: &str) {
        if !self.host_conns.contains_key(group)
            && let Some(h) = self.host_ids.remove(group)
        {
            self.hosts[h as usize] = super::HostDownloads::default();
            self.free_hosts.push(h);
        }
    }
}

/// `publish` as an append to the live stream `known`, when it is that stream published again
/// by its own seed with chunks added: the same path, chunk size and bitrate, every known
/// chunk hash as its prefix, and no end yet (its signature is checked as an append's).
fn continuation(known: &Content, seed: PeerId, publish: &Publish) -> Option<AppendChunks> {
    let (old, new) = (&known.manifest, &publish.manifest);
    let (old_live, new_live) = (old.live?, new.live?);
    let follows = known.publisher == seed
        && known.end_mark.is_none()
        && new.geometry.chunk_size == old.geometry.chunk_size
        && new_live.bitrate_bps == old_live.bitrate_bps
        && new.hashes.len() > old.hashes.len()
        && new.hashes.starts_with(&old.hashes)
        && old.geometry.size == u64::from(old.geometry.chunk_size) * old.hashes.len() as u64;
    follows.then(|| AppendChunks {
        content: known.id,
        first: old.num_chunks(),
        new_size: new.geometry.size,
        hashes: new.hashes[old.hashes.len()..].to_vec(),
        window_start: new_live.first_chunk,
        proof: Digest::ZERO,
        signature: publish.signature,
    })
}
