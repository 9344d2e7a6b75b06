use super::*;
use pdtp_core::wire::LinkSecret;

fn key(n: u8) -> TrackerKey {
    TrackerKey::from_secret([n; 32])
}

/// Bytes in flight one way, as a socket would carry them.
fn wire_of(parts: Vec<Bytes>) -> BytesMut {
    let mut w = BytesMut::new();
    for p in parts {
        w.extend_from_slice(&p);
    }
    w
}

/// A node and a tracker with the handshake done and `hello` (sealed by the node before the
/// handshake finished) delivered; returns both ends and what the tracker read.
fn connected(pin: Option<LinkKey>, tracker: &TrackerKey, hello: &[u8]) -> (SecureLink, SecureLink, BytesMut) {
    let (mut node, first) = SecureLink::initiator(pin).unwrap();
    let mut early = Vec::new();
    node.seal(hello, &mut early).unwrap();
    assert!(early.is_empty(), "nothing leaves in clear before the handshake");
    let mut trk = SecureLink::responder(tracker);
    let (mut to_node, mut plain) = (Vec::new(), BytesMut::new());
    trk.open(&mut BytesMut::from(&first[..]), &mut plain, &mut to_node).unwrap();
    let mut to_trk = Vec::new();
    node.open(&mut wire_of(to_node), &mut plain, &mut to_trk).unwrap();
    assert!(plain.is_empty());
    let mut got = BytesMut::new();
    trk.open(&mut wire_of(to_trk), &mut got, &mut Vec::new()).unwrap();
    (node, trk, got)
}

#[test]
fn a_pinned_link_carries_records_both_ways_and_nothing_in_clear() {
    let tracker = key(7);
    let (mut node, mut trk, got) = connected(Some(tracker.public()), &tracker, b"hello, tracker");
    assert_eq!(&got[..], b"hello, tracker");
    assert_eq!(node.remote_key(), Some(tracker.public()));
    assert!(node.is_open() && trk.is_open());
    // A reply larger than one record is split and comes back whole, even a byte at a time.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = Vec::new();
    trk.seal(&big, &mut out).unwrap();
    let wire = wire_of(out);
    assert!(!wire.windows(64).any(|w| big.windows(64).next() == Some(w)), "plaintext on the wire");
    let (mut pending, mut plain) = (BytesMut::new(), BytesMut::new());
    for b in wire.iter() {
        pending.extend_from_slice(&[*b]);
        node.open(&mut pending, &mut plain, &mut Vec::new()).unwrap();
    }
    assert_eq!(&plain[..], &big[..]);
    assert!(pending.is_empty());
}

#[test]
fn an_unpinned_node_learns_the_trackers_key() {
    let tracker = key(9);
    let (node, _, got) = connected(None, &tracker, b"x");
    assert_eq!(&got[..], b"x");
    assert_eq!(node.remote_key(), Some(tracker.public()));
}

#[test]
fn another_trackers_key_is_refused_before_the_node_sends_anything() {
    let (real, other) = (key(1), key(2));
    let (mut node, first) = SecureLink::initiator(Some(other.public())).unwrap();
    let mut early = Vec::new();
    node.seal(b"secret token", &mut early).unwrap();
    let mut trk = SecureLink::responder(&real);
    let mut to_node = Vec::new();
    trk.open(&mut BytesMut::from(&first[..]), &mut BytesMut::new(), &mut to_node).unwrap();
    let mut to_trk = Vec::new();
    let e = node.open(&mut wire_of(to_node), &mut BytesMut::new(), &mut to_trk).unwrap_err();
    assert_eq!(e, SecureError::WrongKey { got: real.public(), pinned: other.public() });
    assert!(to_trk.is_empty(), "the held plaintext is never sent to the wrong tracker");
    assert!(e.to_string().contains(&real.public().to_string()), "{e}");
}

#[test]
fn a_changed_replayed_or_dropped_record_fails_the_link() {
    let tracker = key(3);
    for case in ["flip", "replay", "drop"] {
        let (mut node, mut trk, _) = connected(Some(tracker.public()), &tracker, b"hi");
        let (mut one, mut two) = (Vec::new(), Vec::new());
        node.seal(b"first message", &mut one).unwrap();
        node.seal(b"second message", &mut two).unwrap();
        let mut wire = match case {
            "flip" => {
                let mut w = wire_of(one);
                let last = w.len() - 1;
                w[last] ^= 1;
                w
            }
            "replay" => wire_of(vec![one[0].clone(), one[0].clone()]),
            _ => wire_of(two),
        };
        let mut plain = BytesMut::new();
        let e = trk.open(&mut wire, &mut plain, &mut Vec::new()).unwrap_err();
        assert_eq!(e, SecureError::BadRecord, "{case}");
        // Once failed, nothing more is read or sealed.
        assert!(trk.seal(b"x", &mut Vec::new()).is_err(), "{case}");
        if case == "flip" || case == "drop" {
            assert!(plain.is_empty(), "{case}: nothing of a bad record is delivered");
        }
    }
}

#[test]
fn a_cleartext_client_fails_the_trackers_handshake() {
    // A PDTP frame in clear (what a node of protocol 4 sends first) is not a Noise message.
    let hello = pdtp_core::wire::Hello {
        version: 4,
        peer_id: pdtp_core::PeerId(1),
        listen_port: None,
        role: pdtp_core::wire::Role::Peer,
    };
    let mut wire = BytesMut::new();
    pdtp_core::wire::codec::encode(&pdtp_core::Message::Hello(hello), &mut wire).unwrap();
    let mut trk = SecureLink::responder(&key(4));
    let mut out = Vec::new();
    let e = trk.open(&mut wire, &mut BytesMut::new(), &mut out).unwrap_err();
    assert_eq!(e, SecureError::Handshake);
    assert!(out.is_empty(), "nothing is answered");
}

#[test]
fn link_keys_print_and_parse_as_64_hex_digits() {
    let k = key(5).public();
    let shown = k.to_string();
    assert_eq!(shown.len(), 64);
    assert_eq!(shown.parse::<LinkKey>(), Ok(k));
    assert!("abc".parse::<LinkKey>().is_err());
    assert!("zz".repeat(32).parse::<LinkKey>().is_err());
    assert_ne!(key(5).public(), key(6).public());
}

/// A peer link's two ends with the link id passed and looked up.
fn peer_pair(secret: &LinkSecret) -> (SecureLink, SecureLink) {
    let (connecting, id) = SecureLink::peer_connecting(secret);
    let mut accepting = SecureLink::peer_accepting();
    let mut wire = BytesMut::from(&id[..]);
    assert_eq!(accepting.wanted_key(&wire), Some(secret.id()), "the id is the secret's");
    accepting.accept_key(&mut wire, secret, &mut Vec::new()).unwrap();
    assert!(wire.is_empty() && accepting.is_open());
    (connecting, accepting)
}

#[test]
fn a_peer_link_is_sealed_both_ways_with_its_orders_secret() {
    let secret = LinkSecret(Box::new([42; 32]));
    let (mut a, mut b) = peer_pair(&secret);
    // A chunk given as a frame head and its bytes, over several records.
    let head = [1u8, 2, 3, 4, 5];
    let chunk: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut out = Vec::new();
    a.seal_parts(&[&head, &chunk], &mut out).unwrap();
    let mut wire = wire_of(out);
    assert_eq!(wire.len(), 5 + 300_000 + 5 * 18, "five records of 18 bytes' overhead each");
    assert!(!wire.windows(64).any(|w| w == &chunk[1000..1064]), "plaintext on the wire");
    let mut plain = BytesMut::new();
    b.open(&mut wire, &mut plain, &mut Vec::new()).unwrap();
    assert_eq!(&plain[..5], &head);
    assert_eq!(&plain[5..], &chunk[..]);
    // And back, with an empty message too.
    let mut out = Vec::new();
    b.seal(b"", &mut out).unwrap();
    b.seal(b"reply", &mut out).unwrap();
    let mut plain = BytesMut::new();
    a.open(&mut wire_of(out), &mut plain, &mut Vec::new()).unwrap();
    assert_eq!(&plain[..], b"reply");
}

#[test]
fn a_peer_link_under_another_secret_or_changed_fails() {
    let (mut a, _) = peer_pair(&LinkSecret(Box::new([1; 32])));
    let (_, mut other) = peer_pair(&LinkSecret(Box::new([2; 32])));
    let mut out = Vec::new();
    a.seal(b"Get chunk 7", &mut out).unwrap();
    let mut plain = BytesMut::new();
    assert_eq!(
        other.open(&mut wire_of(out.clone()), &mut plain, &mut Vec::new()),
        Err(SecureError::BadRecord)
    );
    assert!(plain.is_empty());
    // The right end, one bit changed.
    let (mut a, mut b) = peer_pair(&LinkSecret(Box::new([3; 32])));
    let mut out = Vec::new();
    a.seal(b"Get chunk 7", &mut out).unwrap();
    let mut wire = wire_of(out);
    wire[4] ^= 0x80;
    assert_eq!(b.open(&mut wire, &mut BytesMut::new(), &mut Vec::new()), Err(SecureError::BadRecord));
}

#[test]
fn an_accepting_end_waits_for_the_whole_id_and_an_unknown_one_is_not_taken() {
    let secret = LinkSecret(Box::new([5; 32]));
    let mut accepting = SecureLink::peer_accepting();
    let id = secret.id();
    let mut wire = BytesMut::from(&id[..10]);
    assert_eq!(accepting.wanted_key(&wire), None, "not all of it yet");
    wire.extend_from_slice(&id[10..]);
    // A secret whose id differs is not taken: the link stays waiting.
    accepting.accept_key(&mut wire, &LinkSecret(Box::new([6; 32])), &mut Vec::new()).unwrap();
    assert!(!accepting.is_open() && wire.len() == 16);
    // Nothing is opened or sent while it waits.
    assert_eq!(accepting.open(&mut wire, &mut BytesMut::new(), &mut Vec::new()), Ok(0));
    let mut out = Vec::new();
    accepting.seal(b"early", &mut out).unwrap();
    assert!(out.is_empty());
    accepting.accept_key(&mut wire, &secret, &mut out).unwrap();
    assert!(accepting.is_open());
    assert_eq!(out.len(), 1, "what was held goes out sealed once the key is known");
}
