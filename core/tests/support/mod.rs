//! A tiny in-test network: one seed and some peers wired through in-memory links, with the
//! test playing the tracker (messages to the tracker land in per-node inboxes).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use pdtp_core::memstore::MemStore;
use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
use pdtp_core::seed::{Seed, SeedConfig, SeedEvent};
use pdtp_core::wire::{Hello, Method, PROTOCOL_VERSION, Role, Side, TransferOrder, Welcome};
use pdtp_core::{
    ChunkIndex, ConnId, ContentId, Digest, Endpoint, Geometry, Manifest, Message, PeerId, Time, Token,
    Transmit,
};
use rand_core::SeedableRng;

pub const TRACKER: ConnId = ConnId(0);
pub const KEY: &[u8] = b"seed-key";
pub const NONCE: [u8; 16] = [7; 16];

pub fn tracker_ep() -> Endpoint {
    Endpoint { host: "tracker".into(), port: 6086 }
}

pub fn ep(node: usize) -> Endpoint {
    Endpoint { host: format!("n{node}"), port: 8000 }
}

pub fn rng(seed: u64) -> pdtp_core::Rng {
    pdtp_core::Rng::seed_from_u64(seed)
}

/// Deterministic test bytes.
pub fn data(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>().into()
}

pub fn manifest(path: &str, data: &[u8], chunk_size: u32) -> Manifest {
    let g = Geometry::new(data.len() as u64, chunk_size);
    let hashes = (0..g.num_chunks())
        .map(|i| {
            let r = g.chunk_bytes(i);
            Digest::of(&data[r.start as usize..r.end as usize])
        })
        .collect();
    Manifest { path: path.into(), geometry: g, hashes, live: None }
}

pub enum Ev {
    Seed(SeedEvent),
    Peer(PeerEvent),
}

/// Node 0 is the seed, nodes 1.. are peers with `PeerId(node)`.
pub struct Net {
    pub now: Time,
    pub seed: Seed<MemStore>,
    pub peers: Vec<Peer<MemStore>>,
    /// (node, conn) → (node, conn) for open peer links.
    pub links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Messages each node sent to the tracker, oldest first.
    pub inbox: Vec<Vec<Message>>,
    /// Events each node reported, oldest first.
    pub events: Vec<Vec<Ev>>,
    /// Every transmit each node produced, for assertions about connects and closes.
    pub log: Vec<Vec<Transmit>>,
    /// Whether outgoing peer connects complete (false: they hang until a test decides).
    pub connects_succeed: bool,
    /// Each node's tracker link: [`TRACKER`] until it reconnects after an outage.
    pub tracker_conns: Vec<ConnId>,
}

impl Net {
    /// A net whose seed has published an empty live stream "live" as `content`, with
    /// `chunk_size`-byte chunks at `bitrate_bps`; returns the manifest it published.
    pub fn live(
        peer_cfgs: Vec<PeerConfig>,
        content: ContentId,
        chunk_size: u32,
        bitrate_bps: u64,
    ) -> (Self, Manifest) {
        let mut net = Net::new(MemStore::new(), peer_cfgs);
        net.seed.start_live(net.now, "live", chunk_size, bitrate_bps);
        net.pump();
        let inbox = net.take_inbox(0);
        let [Message::Publish(p)] = &inbox[..] else { panic!("a Publish for the stream: {inbox:?}") };
        let manifest = p.manifest.clone();
        net.tell(0, Message::Published(pdtp_core::wire::Published { path: "live".into(), content }));
        (net, manifest)
    }

    pub fn new(seed_store: MemStore, peer_cfgs: Vec<PeerConfig>) -> Self {
        let mut scfg = SeedConfig::new(PeerId(0), tracker_ep(), KEY);
        scfg.listen_port = Some(8000);
        let now = Time::ZERO;
        let seed = Seed::new(now, scfg, seed_store, rng(0));
        let peers: Vec<_> = peer_cfgs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Peer::new(now, c, MemStore::new(), rng(i as u64 + 1)))
            .collect();
        let n = peers.len() + 1;
        let mut net = Net {
            now,
            seed,
            peers,
            links: BTreeMap::new(),
            inbox: vec![Vec::new(); n],
            events: (0..n).map(|_| Vec::new()).collect(),
            log: vec![Vec::new(); n],
            connects_succeed: true,
            tracker_conns: vec![TRACKER; n],
        };
        net.pump();
        for i in 0..n {
            let role = if i == 0 { Role::Seed } else { Role::Peer };
            let hello =
                Hello { version: PROTOCOL_VERSION, peer_id: PeerId(i as u32), listen_port: Some(8000), role };
            assert_eq!(net.take_inbox(i), vec![Message::Hello(hello)], "Hello first on the tracker link");
            net.tell(i, Message::Welcome(Welcome { peer_id: PeerId(i as u32), nonce: NONCE }));
        }
        net
    }

    pub fn peer_cfg(id: u32) -> PeerConfig {
        let mut c = PeerConfig::new(PeerId(id), tracker_ep());
        c.listen_port = Some(8000);
        c
    }

    pub fn peer(&mut self, i: usize) -> &mut Peer<MemStore> {
        &mut self.peers[i - 1]
    }

    fn poll_transmit(&mut self, i: usize) -> Option<Transmit> {
        if i == 0 { self.seed.poll_transmit() } else { self.peers[i - 1].poll_transmit() }
    }

    pub fn handle_message(&mut self, i: usize, conn: ConnId, msg: Message) {
        let now = self.now;
        if i == 0 {
            self.seed.handle_message(now, conn, msg)
        } else {
            self.peers[i - 1].handle_message(now, conn, msg)
        }
    }

    fn handle_connected(&mut self, i: usize, conn: ConnId) {
        let now = self.now;
        if i == 0 {
            self.seed.handle_connected(now, conn)
        } else {
            self.peers[i - 1].handle_connected(now, conn)
        }
    }

    pub fn handle_closed(&mut self, i: usize, conn: ConnId) {
        let now = self.now;
        if i == 0 { self.seed.handle_closed(now, conn) } else { self.peers[i - 1].handle_closed(now, conn) }
    }

    fn accept(&mut self, i: usize) -> ConnId {
        let now = self.now;
        if i == 0 { self.seed.accept(now).unwrap() } else { self.peers[i - 1].accept(now).unwrap() }
    }

    fn drain_events(&mut self, i: usize) {
        if i == 0 {
            while let Some(e) = self.seed.poll_event() {
                self.events[0].push(Ev::Seed(e));
            }
        } else {
            while let Some(e) = self.peers[i - 1].poll_event() {
                self.events[i].push(Ev::Peer(e));
            }
        }
    }

    /// Routes every pending transmit until all machines are quiet.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..=self.peers.len() {
                while let Some(t) = self.poll_transmit(i) {
                    moved = true;
                    self.log[i].push(t.clone());
                    self.route(i, t);
                }
                self.drain_events(i);
            }
            if !moved {
                return;
            }
        }
        panic!("network did not quiesce");
    }

    fn route(&mut self, i: usize, t: Transmit) {
        match t {
            Transmit::Connect { conn, endpoint, .. } if endpoint.host == "tracker" => {
                self.tracker_conns[i] = conn;
                self.handle_connected(i, conn)
            }
            Transmit::Connect { conn, endpoint, .. } => {
                if !self.connects_succeed {
                    return;
                }
                let j: usize = endpoint.host[1..].parse().unwrap();
                let c2 = self.accept(j);
                self.links.insert((i, conn), (j, c2));
                self.links.insert((j, c2), (i, conn));
                self.handle_connected(i, conn);
            }
            Transmit::Send { conn, msg } if conn == self.tracker_conns[i] => self.inbox[i].push(msg),
            Transmit::Send { conn, msg } => {
                if let Some(&(j, c2)) = self.links.get(&(i, conn)) {
                    self.handle_message(j, c2, msg);
                }
            }
            Transmit::Close { conn, .. } => {
                if let Some((j, c2)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, c2));
                    self.handle_closed(j, c2);
                }
            }
        }
    }

    /// The tracker sends `msg` to node `i`.
    pub fn tell(&mut self, i: usize, msg: Message) {
        self.handle_message(i, self.tracker_conns[i], msg);
        self.pump();
    }

    /// Orders a transfer of `chunk` from `giver` to `taker` with `method`, both orders sent.
    pub fn order(
        &mut self,
        token: u64,
        content: ContentId,
        chunk: ChunkIndex,
        giver: usize,
        taker: usize,
        method: Method,
    ) {
        let token = Token(token);
        let (gc, tc) = match method {
            Method::Get => (None, Some(ep(giver))),
            Method::Put => (Some(ep(taker)), None),
        };
        let mk = |side, other: usize, connect| TransferOrder {
            token,
            content,
            chunk,
            side,
            method,
            other: PeerId(other as u32),
            connect,
            key: pdtp_core::wire::LinkSecret(Box::new([token.0 as u8; 32])),
            punch: false,
        };
        // The accepting end's order first, as is typical; tests that need the other
        // order of arrival send orders by hand.
        let (first, second) = match method {
            Method::Get => ((giver, mk(Side::Giver, taker, gc)), (taker, mk(Side::Taker, giver, tc))),
            Method::Put => ((taker, mk(Side::Taker, giver, tc)), (giver, mk(Side::Giver, taker, gc))),
        };
        self.tell(first.0, Message::Transfer(first.1));
        self.tell(second.0, Message::Transfer(second.1));
    }

    /// Takes node `i`'s tracker inbox.
    pub fn take_inbox(&mut self, i: usize) -> Vec<Message> {
        std::mem::take(&mut self.inbox[i])
    }

    /// Takes node `i`'s peer events.
    pub fn peer_events(&mut self, i: usize) -> Vec<PeerEvent> {
        std::mem::take(&mut self.events[i])
            .into_iter()
            .filter_map(|e| if let Ev::Peer(e) = e { Some(e) } else { None })
            .collect()
    }

    /// Takes the seed's events.
    pub fn seed_events(&mut self) -> Vec<SeedEvent> {
        std::mem::take(&mut self.events[0])
            .into_iter()
            .filter_map(|e| if let Ev::Seed(e) = e { Some(e) } else { None })
            .collect()
    }

    /// Advances time to `t` and fires due timers on every node.
    pub fn advance(&mut self, t: Time) {
        self.now = t;
        self.seed.handle_timeout(t);
        for p in &mut self.peers {
            p.handle_timeout(t);
        }
        self.pump();
    }
}
