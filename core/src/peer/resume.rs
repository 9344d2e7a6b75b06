//! Resuming a download: chunks the store kept from an earlier run count once they hash right.
//!
//! The store says which chunks *may* be there ([`ChunkStore::leftovers`]: for the mio
//! runtime, the whole chunks inside an existing `FILE.part`); the peer reads each one, one
//! at a time, and compares its length and SHA-256 with the manifest. Nothing about the
//! earlier run is trusted (no record of what it verified is kept anywhere): a torn write, a
//! file from another content or plain garbage simply fails the check and is fetched.

use crate::chunks::ByteRange;
use crate::ids::{ChunkIndex, ContentId};
use crate::node::NodeEvent;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{ErrorCode, Interest, Message, Notice};

use super::{Peer, PeerEvent};

impl<S: ChunkStore> Peer<S> {
    /// Checks the store's leftovers for a content just opened: each chunk that matches the
    /// manifest is held and provided to the tracker (in runs of consecutive chunks), the rest
    /// are discarded. Emits [`PeerEvent::Resumed`] when there was anything to check; returns
    /// how many chunks were kept.
    pub(super) fn resume(&mut self, now: Time, content: ContentId) -> u32 {
        let offered = self.node.store.leftovers(content);
        let node = &mut self.node;
        let Some(c) = node.contents.get_mut(&content) else { return 0 };
        let g = c.manifest.geometry;
        let range = offered.start.min(g.num_chunks())..offered.end.min(g.num_chunks());
        if range.is_empty() {
            return 0;
        }
        let (mut kept, mut bytes, mut problems) = (0, 0, Vec::new());
        for i in range.clone() {
            let good = match (node.store.read(content, i), c.manifest.hash(i)) {
                (Ok(payload), Some(hash)) => payload.verify(g.chunk_len(i), hash),
                _ => false,
            };
            if good {
                c.have.insert(i);
                kept += 1;
                bytes += u64::from(g.chunk_len(i));
            } else if let Err(e) = node.store.discard(content, i) {
                problems.push(Notice::new(ErrorCode::Unexpected, e.to_string()));
            }
        }
        let runs = runs(range.clone(), |i| c.have.contains(i));
        for n in problems {
            node.emit(NodeEvent::Problem(n));
        }
        for run in runs {
            let bytes = ByteRange::new(g.chunk_bytes(run.start).start, g.chunk_bytes(run.end - 1).end);
            node.send_tracker(now, Message::Provide(Interest::range(content, bytes)));
        }
        let checked = range.end - range.start;
        self.push(PeerEvent::Resumed { content, checked, kept, bytes });
        kept
    }
}

/// The maximal runs of consecutive chunks in `range` for which `held` is true.
pub(super) fn runs(
    range: core::ops::Range<ChunkIndex>,
    held: impl Fn(ChunkIndex) -> bool,
) -> Vec<core::ops::Range<ChunkIndex>> {
    let mut out: Vec<core::ops::Range<ChunkIndex>> = Vec::new();
    for i in range.filter(|&i| held(i)) {
        match out.last_mut() {
            Some(last) if last.end == i => last.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rand_core::SeedableRng;

    use super::*;
    use crate::chunks::Geometry;
    use crate::ids::{Endpoint, PeerId};
    use crate::manifest::{Digest, Manifest};
    use crate::memstore::MemStore;
    use crate::output::Transmit;
    use crate::peer::PeerConfig;
    use crate::wire::{TellInfo, Welcome};

    const CHUNK: u32 = 10;

    fn data(seed: u8) -> Vec<u8> {
        (0..95u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn manifest(data: &[u8]) -> Manifest {
        let g = Geometry::new(data.len() as u64, CHUNK);
        let hashes = (0..g.num_chunks())
            .map(|i| {
                let r = g.chunk_bytes(i);
                Digest::of(&data[r.start as usize..r.end as usize])
            })
            .collect();
        Manifest { path: "show.mp4".into(), geometry: g, hashes, live: None }
    }

    /// A peer over `store`, welcomed and told the manifest of `data`; what it sent the tracker
    /// after the manifest, and its events.
    fn told(store: MemStore, data: &[u8]) -> (Peer<MemStore>, Vec<Message>, Vec<PeerEvent>) {
        let now = Time::ZERO;
        let tracker = Endpoint { host: "127.0.0.1".into(), port: 6086 };
        let rng = crate::Rng::seed_from_u64(1);
        let mut peer = Peer::new(now, PeerConfig::new(PeerId(7), tracker), store, rng);
        peer.get(now, "show.mp4");
        let Some(Transmit::Connect { conn, .. }) = peer.poll_transmit() else { panic!("no connect") };
        peer.handle_connected(now, conn);
        peer.handle_message(now, conn, Message::Welcome(Welcome { peer_id: PeerId(7), nonce: [0; 16] }));
        while peer.poll_transmit().is_some() {}
        let tell = TellInfo { content: ContentId(3), manifest: manifest(data), signature: None };
        peer.handle_message(now, conn, Message::TellInfo(Box::new(tell)));
        let mut sent = Vec::new();
        while let Some(t) = peer.poll_transmit() {
            if let Transmit::Send { msg, .. } = t {
                sent.push(msg);
            }
        }
        let mut events = Vec::new();
        while let Some(e) = peer.poll_event() {
            if !matches!(e, PeerEvent::Deliver { .. }) {
                events.push(e);
            }
        }
        (peer, sent, events)
    }

    fn provides(sent: &[Message]) -> Vec<ByteRange> {
        sent.iter()
            .filter_map(|m| match m {
                Message::Provide(i) => i.range,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn chunks_left_by_an_earlier_run_are_held_only_if_they_hash_right() {
        let good = data(0);
        // Nine whole chunks of ten and a short one; the earlier run stopped after 6.5 chunks,
        // chunk 2 was torn and chunk 4 never written (zeros).
        let mut left = good[..65].to_vec();
        left[23] ^= 1;
        left[40..50].fill(0);
        let (peer, sent, events) = told(MemStore::new().with_leftover("show.mp4", Bytes::from(left)), &good);
        assert!(events.contains(&PeerEvent::Resumed {
            content: ContentId(3),
            checked: 6,
            kept: 4,
            bytes: 40
        }));
        assert_eq!(peer.progress(ContentId(3)), Some((4, 10)));
        // Provided in runs before the request, so the tracker never counts them as wanted.
        assert_eq!(provides(&sent), [ByteRange::new(0, 20), ByteRange::new(30, 40), ByteRange::new(50, 60)]);
        let request = sent.iter().position(|m| matches!(m, Message::Request(_))).expect("a request");
        assert!(sent[..request].iter().filter(|m| matches!(m, Message::Provide(_))).count() == 3);
        // The bad chunks are gone from the store: they will be fetched and written anew.
        assert!(peer.store().contains(ContentId(3), 3) && !peer.store().contains(ContentId(3), 2));
        assert!(!peer.store().contains(ContentId(3), 4) && !peer.store().contains(ContentId(3), 6));
    }

    #[test]
    fn leftovers_of_another_content_are_never_held() {
        let (peer, sent, events) = told(MemStore::new().with_leftover("show.mp4", data(1)), &data(0));
        assert!(events.contains(&PeerEvent::Resumed {
            content: ContentId(3),
            checked: 10,
            kept: 0,
            bytes: 0
        }));
        assert_eq!(peer.progress(ContentId(3)), Some((0, 10)));
        assert!(provides(&sent).is_empty());
        assert!(sent.contains(&Message::Request(Interest::all(ContentId(3)))));
        assert_eq!(peer.store().chunk_count(), 0);
    }

    #[test]
    fn a_complete_leftover_is_delivered_and_completes_without_a_request() {
        let good = data(0);
        let (_, sent, events) = told(MemStore::new().with_leftover("show.mp4", good.clone()), &good);
        assert_eq!(provides(&sent), [ByteRange::new(0, 95)]);
        assert!(!sent.iter().any(|m| matches!(m, Message::Request(_))), "{sent:?}");
        assert!(events.contains(&PeerEvent::DownloadComplete { content: ContentId(3) }));
    }

    #[test]
    fn a_fresh_store_resumes_nothing() {
        let (_, sent, events) = told(MemStore::new(), &data(0));
        assert!(!events.iter().any(|e| matches!(e, PeerEvent::Resumed { .. })));
        assert!(provides(&sent).is_empty());
        assert!(sent.contains(&Message::Request(Interest::all(ContentId(3)))));
    }

    #[test]
    fn runs_group_consecutive_chunks() {
        let held = [1, 2, 3, 5, 8, 9];
        assert_eq!(runs(0..10, |i| held.contains(&i)), [1..4, 5..6, 8..10]);
        assert!(runs(0..0, |_| true).is_empty());
    }
}
