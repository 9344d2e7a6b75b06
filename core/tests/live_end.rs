//! The end of a live stream: the seed's end mark (an append with no chunks) completes a
//! viewer's download once it has delivered the last chunk.

mod support;

use bytes::Bytes;
use pdtp_core::auth::append_proof;
use pdtp_core::node::NodeEvent;
use pdtp_core::peer::PeerEvent;
use pdtp_core::wire::{Method, TellInfo};
use pdtp_core::{ContentId, Digest, Message, Payload};
use support::*;

const C: ContentId = ContentId(9);

fn chunk(i: u32, len: usize) -> Bytes {
    Bytes::from(vec![i as u8 + 1; len])
}

#[test]
fn an_ended_stream_completes_after_its_last_chunk_is_delivered() {
    let (mut net, _) = Net::live(vec![Net::peer_cfg(1)], C, 100, 8_000);
    // Two full chunks and a short last one, then the end.
    let lens = [100usize, 100, 40];
    let mut appends = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        let i = i as u32;
        net.seed.store_mut().put(C, i, chunk(i, len));
        let now = net.now;
        net.seed.push_live_chunk(now, "live", len as u32, Digest::of(&chunk(i, len)));
        net.pump();
        let inbox = net.take_inbox(0);
        let [Message::AppendChunks(a)] = &inbox[..] else { panic!("{inbox:?}") };
        appends.push(a.clone());
    }
    let now = net.now;
    net.seed.end_live(now, "live");
    net.pump();
    let inbox = net.take_inbox(0);
    let [Message::AppendChunks(end)] = &inbox[..] else { panic!("one end mark: {inbox:?}") };
    assert!(end.hashes.is_empty());
    assert_eq!((end.first, end.new_size), (3, 240), "the end mark names the stream's final size");
    assert_eq!(
        end.proof,
        append_proof(KEY, &NONCE, C, 3, 240, end.window_start, &[]),
        "signed like an append"
    );

    // A viewer that joined at the start (the tracker's manifest after the first chunk).
    let manifest = pdtp_core::Manifest {
        path: "live".into(),
        geometry: pdtp_core::Geometry::new(100, 100),
        hashes: vec![Digest::of(&chunk(0, 100))],
        live: Some(pdtp_core::LiveInfo { bitrate_bps: 8_000, first_chunk: 0 }),
    };
    net.peers[0].get(net.now, "live");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest, signature: None })));
    for a in &appends[1..] {
        let mut fwd = a.clone();
        fwd.proof = Digest::ZERO;
        net.tell(1, Message::AppendChunks(fwd));
    }
    let mut events = Vec::new();
    net.order(1, C, 0, 0, 1, Method::Get);
    net.order(2, C, 1, 0, 1, Method::Get);
    events.extend(net.peer_events(1));
    // The end arrives before the last chunk: no completion yet.
    let mut fwd = end.clone();
    fwd.proof = Digest::ZERO;
    net.tell(1, Message::AppendChunks(fwd));
    events.extend(net.peer_events(1));
    assert!(!events.iter().any(|e| matches!(e, PeerEvent::DownloadComplete { .. })), "{events:?}");
    net.order(3, C, 2, 0, 1, Method::Get);
    events.extend(net.peer_events(1));
    let mut bytes = Vec::new();
    for e in &events {
        if let PeerEvent::Deliver { payload: Payload::Real(b), .. } = e {
            bytes.extend_from_slice(b);
        }
    }
    let want: Vec<u8> = (0..3u32).flat_map(|i| chunk(i, lens[i as usize]).to_vec()).collect();
    assert_eq!(bytes, want, "every byte, in order");
    let done =
        events.iter().position(|e| matches!(e, PeerEvent::DownloadComplete { content } if *content == C));
    let last_deliver = events.iter().rposition(|e| matches!(e, PeerEvent::Deliver { .. }));
    assert!(done.is_some() && done > last_deliver, "complete after the last byte: {events:?}");
    assert!(
        !net.peer_events(1).iter().any(|e| matches!(e, PeerEvent::DownloadComplete { .. })),
        "completion is reported once"
    );
}

#[test]
fn a_misplaced_end_mark_is_a_problem_not_an_end() {
    let (mut net, _) = Net::live(vec![Net::peer_cfg(1)], C, 100, 8_000);
    let manifest = pdtp_core::Manifest {
        path: "live".into(),
        geometry: pdtp_core::Geometry::new(0, 100),
        hashes: Vec::new(),
        live: Some(pdtp_core::LiveInfo { bitrate_bps: 8_000, first_chunk: 0 }),
    };
    net.peers[0].get(net.now, "live");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest, signature: None })));
    net.peer_events(1);
    let bad = pdtp_core::wire::AppendChunks {
        content: C,
        first: 4,
        new_size: 400,
        hashes: Vec::new(),
        window_start: 0,
        proof: Digest::ZERO,
        signature: None,
    };
    net.tell(1, Message::AppendChunks(Box::new(bad)));
    let events = net.peer_events(1);
    assert!(events.iter().any(|e| matches!(e, PeerEvent::Node(NodeEvent::Problem(_)))), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, PeerEvent::DownloadComplete { .. })));
}
