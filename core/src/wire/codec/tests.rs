//! Unit tests of the codec's internals; the round-trip properties are in `tests/wire_props.rs`.

use bytes::Bytes;
use proptest::prelude::*;

use super::decode::fuzz_harness;
use super::*;
use crate::chunks::Geometry;
use crate::ids::PeerId;
use crate::manifest::{Digest, Manifest};
use crate::wire::*;

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len() + 1).unwrap().to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn decode_all(bytes: &[u8], limits: Limits) -> Result<Option<Message>, DecodeError> {
    let mut d = Decoder::new(limits).virtual_payloads(true);
    d.push(bytes);
    d.next()
}

fn data(payload: Payload) -> Message {
    Message::Data(Data { token: Token(0xdead_beef), content: ContentId(7), chunk: 300, payload })
}

#[test]
fn varint_len_matches_postcard() {
    for v in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX >> 1, u64::MAX] {
        assert_eq!(varint_len(v), postcard::experimental::serialized_size(&v).unwrap(), "v = {v}");
    }
}

#[test]
fn data_header_max_len_is_the_longest_encoding() {
    let h =
        DataHeader { token: Token(u64::MAX), content: ContentId(u32::MAX), chunk: u32::MAX, len: u32::MAX };
    assert_eq!(postcard::experimental::serialized_size(&h).unwrap(), DATA_HEADER_MAX_LEN);
    assert_eq!(h.encoded_len(), DATA_HEADER_MAX_LEN);
    let small = DataHeader { token: Token(1), content: ContentId(2), chunk: 3, len: 200 };
    assert_eq!(small.encoded_len(), postcard::experimental::serialized_size(&small).unwrap());
}

#[test]
fn frame_layout_is_as_documented() {
    let mut out = BytesMut::new();
    encode(&Message::Verdict(Verdict { token: Token(5), accepted: true }), &mut out).unwrap();
    // Verdict is variant 13; the token is the varint 5, then the bool.
    assert_eq!(&out[..], &[0, 0, 0, 4, 0, 13, 5, 1]);

    out.clear();
    encode(&data(Payload::Real(Bytes::from_static(b"abc"))), &mut out).unwrap();
    let header = postcard::to_allocvec(&DataHeader {
        token: Token(0xdead_beef),
        content: ContentId(7),
        chunk: 300,
        len: 3,
    })
    .unwrap();
    let mut body = header.clone();
    body.extend_from_slice(b"abc");
    assert_eq!(&out[..], &frame(1, &body)[..]);

    out.clear();
    let tag = Digest([9; 32]);
    encode(&data(Payload::Virtual { len: 1 << 20, tag }), &mut out).unwrap();
    let mut body = postcard::to_allocvec(&DataHeader {
        token: Token(0xdead_beef),
        content: ContentId(7),
        chunk: 300,
        len: 1 << 20,
    })
    .unwrap();
    body.extend_from_slice(&[9; 32]);
    assert_eq!(&out[..], &frame(2, &body)[..]);
}

#[test]
fn data_header_alone_plus_payload_equals_encode() {
    let payload = Bytes::from(vec![0x5a; 1000]);
    let Message::Data(d) = data(Payload::Real(payload.clone())) else { unreachable!() };
    let mut head = BytesMut::new();
    encode_data_header(&d, &mut head).unwrap();
    head.extend_from_slice(&payload);
    let mut whole = BytesMut::new();
    encode(&Message::Data(d), &mut whole).unwrap();
    assert_eq!(head, whole);
}

#[test]
fn real_payload_is_a_slice_of_the_receive_buffer() {
    let mut out = BytesMut::new();
    encode(&data(Payload::Real(Bytes::from(vec![1u8; 4096]))), &mut out).unwrap();
    let mut d = Decoder::new(Limits::DEFAULT);
    d.push(&out);
    let range = d.buf.as_ptr_range();
    let Some(Message::Data(Data { payload: Payload::Real(bytes), .. })) = d.next().unwrap() else {
        panic!("expected real data");
    };
    assert_eq!(bytes.len(), 4096);
    assert!(range.contains(&bytes.as_ptr()), "payload was copied out of the receive buffer");
}

#[test]
fn over_long_varint_is_non_canonical() {
    // Verdict(token 0, false) with the token written as a two-byte zero.
    assert_eq!(decode_all(&frame(0, &[13, 0x80, 0x00, 0]), Limits::DEFAULT), Err(DecodeError::NonCanonical));
    assert!(decode_all(&frame(0, &[13, 0x00, 0]), Limits::DEFAULT).unwrap().is_some());
    // A data header whose chunk index is over-long.
    let mut body = vec![1, 2, 0x83, 0x00, 3];
    body.extend_from_slice(b"xyz");
    assert_eq!(decode_all(&frame(1, &body), Limits::DEFAULT), Err(DecodeError::NonCanonical));
}

#[test]
fn malformed_bodies_are_typed_errors() {
    let l = Limits::DEFAULT;
    assert_eq!(decode_all(&frame(0, &[13, 5, 0, 9]), l), Err(DecodeError::TrailingBytes { count: 1 }));
    // Variant 18 is Data, which is never a control body; 200 is no variant at all.
    assert!(matches!(decode_all(&frame(0, &[18]), l), Err(DecodeError::Malformed(_))));
    assert!(matches!(decode_all(&frame(0, &[200, 1]), l), Err(DecodeError::Malformed(_))));
    // Completed with an Option tag of 2.
    assert!(matches!(decode_all(&frame(0, &[12, 1, 2]), l), Err(DecodeError::Malformed(_))));
    // A truncated body inside a complete frame.
    assert!(matches!(decode_all(&frame(0, &[12, 1, 1, 0, 0]), l), Err(DecodeError::Malformed(_))));
    // Verdict with a bool of 2.
    assert!(matches!(decode_all(&frame(0, &[13, 1, 2]), l), Err(DecodeError::Malformed(_))));
    assert_eq!(decode_all(&[0, 0, 0, 0], l), Err(DecodeError::EmptyFrame));
    assert_eq!(decode_all(&frame(3, &[]), l), Err(DecodeError::UnknownKind(3)));
    assert_eq!(decode_all(&frame(255, &[1, 2]), l), Err(DecodeError::UnknownKind(255)));
}

#[test]
fn data_frames_check_their_lengths() {
    let l = Limits::new(1024, 100);
    let mut body = vec![1, 2, 3, 5];
    body.extend_from_slice(b"abcd");
    assert_eq!(
        decode_all(&frame(1, &body), l),
        Err(DecodeError::PayloadLengthMismatch { declared: 5, actual: 4 })
    );
    let mut body = vec![1, 2, 3, 101];
    body.extend_from_slice(&[0; 101]);
    assert_eq!(decode_all(&frame(1, &body), l), Err(DecodeError::PayloadTooLarge { len: 101, max: 100 }));
    // A virtual payload obeys the same payload limit, and its tag must be exactly 32 bytes.
    let mut body = vec![1, 2, 3, 101];
    body.extend_from_slice(&[0; 32]);
    assert_eq!(decode_all(&frame(2, &body), l), Err(DecodeError::PayloadTooLarge { len: 101, max: 100 }));
    let mut body = vec![1, 2, 3, 100];
    body.extend_from_slice(&[0; 31]);
    assert!(matches!(decode_all(&frame(2, &body), l), Err(DecodeError::Malformed(_))));
    body.extend_from_slice(&[0; 2]);
    assert_eq!(decode_all(&frame(2, &body), l), Err(DecodeError::TrailingBytes { count: 1 }));
    body.pop();
    assert!(decode_all(&frame(2, &body), l).unwrap().is_some());
}

#[test]
fn limits_apply_before_anything_is_reserved() {
    let l = Limits::new(1000, 5000);
    // Over every kind's limit: refused from the length prefix alone.
    let mut d = Decoder::new(l);
    d.push(&u32::MAX.to_be_bytes());
    assert!(matches!(d.next(), Err(DecodeError::FrameTooLarge { len: u32::MAX, .. })));
    assert!(d.capacity() < 64);
    // Within the data limit but over the control limit: refused once the kind byte is in.
    let mut d = Decoder::new(l);
    d.push(&[0, 0, 0x07, 0xd0]);
    assert_eq!(d.next(), Ok(None));
    d.push(&[0]);
    assert_eq!(d.next(), Err(DecodeError::FrameTooLarge { len: 2000, max: 1001 }));
    assert!(d.capacity() < 64);
    // Exactly at the control limit: accepted, with room for the frame (under one step).
    let mut d = Decoder::new(l);
    d.push(&[0, 0, 0x03, 0xe9, 0]);
    assert_eq!(d.next(), Ok(None));
    assert!(d.capacity() >= 1005);
}

/// A frame announced at the protocol's 16 MiB control limit with only a few bytes behind it
/// pins one reserve step, not 16 MiB; sent in full, it still decodes.
#[test]
fn an_announced_length_reserves_no_more_than_the_bytes_that_came() {
    let body = {
        let mut v = bytes::BytesMut::new();
        let msg = Message::Hello(crate::wire::Hello {
            version: crate::wire::PROTOCOL_VERSION,
            peer_id: crate::PeerId(7),
            listen_port: Some(1),
            role: crate::wire::Role::Peer,
        });
        encode(&msg, &mut v).unwrap();
        v
    };
    let huge = Limits::DEFAULT.max_frame_len(Kind::Control) as u32;
    let mut d = Decoder::new(Limits::DEFAULT);
    d.push(&huge.to_be_bytes());
    d.push(&[0, 1, 2, 3]);
    assert_eq!(d.next(), Ok(None));
    assert!(
        d.capacity() <= 2 * super::decode::RESERVE_STEP,
        "reserved {} bytes for 5 received",
        d.capacity()
    );
    // A frame still decodes as its bytes arrive in small pieces.
    let mut d = Decoder::new(Limits::DEFAULT);
    for piece in body.chunks(3) {
        d.push(piece);
    }
    assert!(matches!(d.next(), Ok(Some(Message::Hello(_)))));
}

#[test]
fn virtual_payloads_are_refused_unless_enabled() {
    let mut out = BytesMut::new();
    encode(&data(Payload::Virtual { len: 10, tag: Digest([3; 32]) }), &mut out).unwrap();
    let mut d = Decoder::new(Limits::DEFAULT);
    d.push(&out[..FRAME_HEAD_LEN]);
    // Refused from the kind byte, before the body arrives.
    assert_eq!(d.next(), Err(DecodeError::VirtualRefused));
    assert_eq!(DecodeError::VirtualRefused.notice().code, ErrorCode::Malformed);
    let mut d = Decoder::new(Limits::DEFAULT).virtual_payloads(true);
    d.push(&out);
    assert!(matches!(d.next(), Ok(Some(Message::Data(_)))));
}

#[test]
fn first_error_poisons() {
    let mut d = Decoder::new(Limits::DEFAULT);
    d.push(&frame(7, &[]));
    let mut ok = BytesMut::new();
    encode(&Message::Completed(Completed { token: Token(1), hash: None, copy_us: 0 }), &mut ok).unwrap();
    d.push(&ok);
    assert_eq!(d.next(), Err(DecodeError::UnknownKind(7)));
    assert!(d.is_poisoned());
    assert_eq!(d.buffered(), 0);
    d.push(&ok);
    assert_eq!(d.buffered(), 0);
    assert_eq!(d.next(), Err(DecodeError::Poisoned));
}

#[test]
fn notices_name_the_fault() {
    assert_eq!(DecodeError::EmptyFrame.notice().code, ErrorCode::Malformed);
    assert_eq!(DecodeError::FrameTooLarge { len: 9, max: 8 }.notice().code, ErrorCode::Overloaded);
    assert!(DecodeError::UnknownKind(9).notice().detail.contains('9'));
}

#[test]
fn encoding_data_as_control_is_refused_by_serde() {
    // The codec never does this; the check guards the `#[serde(skip)]` on `Message::Data`.
    let msg = data(Payload::Virtual { len: 1, tag: Digest::ZERO });
    assert!(postcard::to_allocvec(&msg).is_err());
    let mut out = BytesMut::from(&b"keep"[..]);
    assert!(encode_control(&msg, &mut out).is_err());
    assert_eq!(&out[..], b"keep");
}

proptest! {
    #[test]
    fn fuzz_harness_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_harness(&bytes);
    }

    #[test]
    fn fuzz_harness_survives_mutated_frames(
        token in any::<u64>(),
        hash in proptest::option::of(any::<[u8; 32]>()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut out = BytesMut::new();
        let completed = Message::Completed(Completed { token: Token(token), hash: hash.map(Digest), copy_us: 7 });
        encode(&completed, &mut out).unwrap();
        encode(&data(Payload::Real(Bytes::from_static(b"0123456789"))), &mut out).unwrap();
        let mut bytes = out.to_vec();
        for (at, with) in flips {
            let i = at.index(bytes.len());
            bytes[i] = with;
        }
        fuzz_harness(&bytes);
    }
}

/// The variant indexes `docs/protocol.md` §5 lists.
#[test]
fn variant_indexes_match_the_protocol_reference() {
    let manifest =
        Manifest { path: String::new(), geometry: Geometry::new(0, 1), hashes: vec![], live: None };
    let interest = Interest::all(ContentId(0));
    let req = PeerRequest { token: Token(0), content: ContentId(0), chunk: 0 };
    let notice = Notice::new(ErrorCode::Malformed, "");
    let order = TransferOrder {
        token: Token(0),
        content: ContentId(0),
        chunk: 0,
        side: Side::Giver,
        method: Method::Get,
        other: PeerId(0),
        connect: None,
        key: crate::wire::LinkSecret(Box::new([3; 32])),
        punch: false,
    };
    let msgs = [
        Message::Hello(Hello { version: 1, peer_id: PeerId(0), listen_port: None, role: Role::Peer }),
        Message::Welcome(Welcome { peer_id: PeerId(0), nonce: [0; 16] }),
        Message::AskInfo(AskInfo { path: String::new() }),
        Message::TellInfo(Box::new(TellInfo {
            content: ContentId(0),
            manifest: manifest.clone(),
            signature: None,
        })),
        Message::Publish(Box::new(Publish {
            manifest,
            proof: Digest::ZERO,
            signature: None,
            uplink_bps: None,
        })),
        Message::Published(Published { path: String::new(), content: ContentId(0) }),
        Message::AppendChunks(Box::new(AppendChunks {
            content: ContentId(0),
            first: 0,
            new_size: 0,
            hashes: vec![],
            window_start: 0,
            proof: Digest::ZERO,
            signature: Some(crate::signing::SigningKey::from_secret([3; 32]).sign(&Digest::ZERO)),
        })),
        Message::Request(interest),
        Message::Unrequest(interest),
        Message::Provide(interest),
        Message::Unprovide(interest),
        Message::Transfer(order),
        Message::Completed(Completed { token: Token(0), hash: None, copy_us: 0 }),
        Message::Verdict(Verdict { token: Token(0), accepted: false }),
        Message::Get(req),
        Message::Put(req),
        Message::Error(notice.clone()),
        Message::Warning(notice),
    ];
    for (index, msg) in msgs.iter().enumerate() {
        let mut out = BytesMut::new();
        encode(msg, &mut out).unwrap();
        assert_eq!(usize::from(out[FRAME_HEAD_LEN]), index, "{}", msg.kind());
    }
    assert_eq!(first_byte(&Role::Seed), 1);
    assert_eq!(first_byte(&Side::Taker), 1);
    assert_eq!(first_byte(&Method::Put), 1);
    for (index, code) in ErrorCode::ALL.iter().enumerate() {
        assert_eq!(usize::from(first_byte(code)), index, "{code:?}");
    }
}

/// The first byte of a value's postcard encoding (its variant index for a small enum).
fn first_byte<T: Serialize>(value: &T) -> u8 {
    postcard::to_allocvec(value).unwrap()[0]
}

#[test]
fn wire_len_counts_virtual_payloads_as_real_bytes() {
    use crate::ids::{ContentId, Token};
    use crate::manifest::Digest;
    use crate::payload::Payload;
    use crate::wire::Data;
    let real = Message::Data(Data {
        token: Token(7),
        content: ContentId(1),
        chunk: 3,
        payload: Payload::Real(bytes::Bytes::from(vec![0u8; 1000])),
    });
    let virt = Message::Data(Data {
        token: Token(7),
        content: ContentId(1),
        chunk: 3,
        payload: Payload::Virtual { len: 1000, tag: Digest::ZERO },
    });
    assert_eq!(wire_len(&real), encoded_len(&real));
    assert_eq!(wire_len(&virt), encoded_len(&real));
    assert!(encoded_len(&virt) < 100, "a virtual frame itself carries only the tag");
}

#[test]
fn fill_with_appends_like_push_and_is_dropped_when_poisoned() {
    let msg = data(Payload::Real(Bytes::from_static(b"payload bytes")));
    let mut out = BytesMut::new();
    encode(&msg, &mut out).unwrap();
    let mut d = Decoder::new(Limits::DEFAULT);
    // In two pieces, as two socket reads would append them.
    let (a, b) = out.split_at(7);
    d.fill_with(|buf| buf.extend_from_slice(a));
    assert_eq!(d.next().unwrap(), None);
    let n = d.fill_with(|buf| {
        buf.extend_from_slice(b);
        b.len()
    });
    assert_eq!(n, b.len());
    assert_eq!(d.next().unwrap(), Some(msg));
    assert_eq!(d.buffered(), 0);

    d.push(&[0, 0, 0, 0]);
    assert!(d.next().is_err());
    d.fill_with(|buf| {
        assert!(buf.is_empty(), "a poisoned decoder hands out a scratch buffer");
        buf.extend_from_slice(&out);
    });
    assert_eq!(d.buffered(), 0);
    assert_eq!(d.next(), Err(DecodeError::Poisoned));
}
