//! Seed signatures end to end between real seed and peer machines, with the test playing the
//! tracker, so it can also play a lying one: a viewer that pinned its seed's key takes no
//! manifest and no live append that the seed did not sign.

#![allow(clippy::unwrap_used)]

mod support;

use pdtp_core::memstore::MemStore;
use pdtp_core::peer::{PeerConfig, PeerEvent};
use pdtp_core::seed::{Seed, SeedConfig};
use pdtp_core::signing::{Chain, SigningKey};
use pdtp_core::wire::{Interest, Published, TellInfo, Welcome};
use pdtp_core::{ContentId, Digest, Message, PeerId};
use support::*;

const C: ContentId = ContentId(3);

fn pinned_peer(key: &SigningKey) -> PeerConfig {
    let mut c = Net::peer_cfg(1);
    c.seed_key = Some(key.public());
    c
}

/// Replaces the net's seed by one that signs with `key`, welcomed like the first.
fn signing_seed(net: &mut Net, key: &SigningKey) {
    let mut cfg = SeedConfig::new(PeerId(0), tracker_ep(), KEY);
    cfg.listen_port = Some(8000);
    cfg.signing_key = Some(key.clone());
    net.seed = Seed::new(net.now, cfg, MemStore::new(), rng(0));
    net.pump();
    net.take_inbox(0);
    net.tell(0, Message::Welcome(Welcome { peer_id: PeerId(0), nonce: NONCE }));
}

fn refusal(events: &[PeerEvent]) -> Option<&str> {
    events.iter().find_map(|e| match e {
        PeerEvent::ManifestRefused { reason, .. } => Some(reason.as_str()),
        _ => None,
    })
}

#[test]
fn a_pinned_viewer_takes_only_the_manifest_its_seed_signed() {
    let key = SigningKey::from_secret([1; 32]);
    let data = data(2_500);
    let m = manifest("show.mp4", &data, 1_000);
    let good = key.sign(&Chain::of(&m).statement(2_500, false));
    let mut net = Net::new(MemStore::new(), vec![pinned_peer(&key)]);
    let mut tampered = m.clone();
    tampered.hashes[1] = Digest::of(b"the attacker's chunk");
    let other = SigningKey::from_secret([2; 32]);
    let lies = [
        (tampered.clone(), Some(good), "does not verify"),
        (m.clone(), None, "not signed"),
        (tampered.clone(), Some(other.sign(&Chain::of(&tampered).statement(2_500, false))), "not the pinned"),
    ];
    for (manifest, signature, why) in lies {
        let now = net.now;
        net.peer(1).get(now, "show.mp4");
        net.pump();
        net.take_inbox(1);
        net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest, signature })));
        let events = net.peer_events(1);
        let reason = refusal(&events).unwrap_or_else(|| panic!("refused ({why}): {events:?}"));
        assert!(reason.contains(why) && reason.contains("show.mp4"), "{reason}");
        assert!(!events.iter().any(|e| matches!(e, PeerEvent::ManifestReceived { .. })));
        assert_eq!(net.take_inbox(1), vec![], "nothing requested from a refused manifest");
    }
    let now = net.now;
    net.peer(1).get(now, "show.mp4");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest: m, signature: Some(good) })));
    let events = net.peer_events(1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PeerEvent::ManifestReceived { signer: Some(k), .. } if *k == key.public())),
        "{events:?}"
    );
    assert_eq!(net.take_inbox(1), vec![Message::Request(Interest::all(C))]);
}

#[test]
fn a_signed_live_stream_is_checked_append_by_append_and_a_forged_append_stops_it() {
    let key = SigningKey::from_secret([4; 32]);
    let mut net = Net::new(MemStore::new(), vec![pinned_peer(&key)]);
    signing_seed(&mut net, &key);
    net.seed.start_live(net.now, "live", 100, 800);
    net.pump();
    let inbox = net.take_inbox(0);
    let [Message::Publish(p)] = &inbox[..] else { panic!("a publish: {inbox:?}") };
    let published = p.manifest.clone();
    let s0 = p.signature.unwrap();
    assert!(s0.verifies(&Chain::of(&published).statement(0, false)), "the seed signs its publish");
    net.tell(0, Message::Published(Published { path: "live".into(), content: C }));
    // The seed makes chunks 0..6; the test, as the tracker, collects its appends.
    let mut appends = Vec::new();
    for i in 0..6u8 {
        let now = net.now;
        net.seed.push_live_chunk(now, "live", 100, Digest::of(&[i; 100]));
        net.pump();
        for msg in net.take_inbox(0) {
            if let Message::AppendChunks(a) = msg {
                appends.push(*a);
            }
        }
    }
    assert_eq!(appends.len(), 6);
    // A viewer joins after three chunks: the manifest so far and the seed's latest signature.
    let mut m = published.clone();
    m.geometry.size = 300;
    m.hashes = appends[..3].iter().flat_map(|a| a.hashes.clone()).collect();
    let now = net.now;
    net.peer(1).get(now, "live");
    net.pump();
    net.take_inbox(1);
    net.tell(
        1,
        Message::TellInfo(Box::new(TellInfo { content: C, manifest: m, signature: appends[2].signature })),
    );
    let events = net.peer_events(1);
    assert!(refusal(&events).is_none(), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, PeerEvent::ManifestReceived { signer: Some(_), .. })));
    net.tell(1, Message::AppendChunks(Box::new(appends[3].clone())));
    assert!(refusal(&net.peer_events(1)).is_none(), "a signed append is taken");
    assert_eq!(net.peer(1).progress(C).map(|(_, n)| n), Some(4));
    // A lying tracker swaps chunk 4's hash: refused, and nothing after it is taken.
    let mut forged = appends[4].clone();
    forged.hashes[0] = Digest::of(b"the attacker's chunk");
    net.tell(1, Message::AppendChunks(Box::new(forged)));
    let reason = refusal(&net.peer_events(1)).map(str::to_owned).expect("a forged append is refused");
    assert!(reason.contains("chunk 4") && reason.contains("not signed"), "{reason}");
    net.tell(1, Message::AppendChunks(Box::new(appends[5].clone())));
    assert_eq!(net.peer(1).progress(C).map(|(_, n)| n), Some(4), "the stream stays stopped");
}
