//! Properties of the wire codec: every message round-trips, frames split anywhere decode
//! the same, arbitrary bytes never panic or outgrow the limits, truncated frames wait.

// A test crate: its helpers panic on purpose (clippy only exempts `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use pdtp_core::signing::{SeedKey, SeedSignature};
use pdtp_core::wire::codec::{DecodeError, Decoder, Limits, encode, encoded_len};
use pdtp_core::wire::{
    AppendChunks, AskInfo, Completed, Data, ErrorCode, Hello, Interest, Method, Notice, PeerRequest, Publish,
    Published, Role, Side, TellInfo, TransferOrder, Verdict, Welcome,
};
use pdtp_core::{ByteRange, ContentId, Digest, Endpoint, Geometry, LiveInfo, Manifest, Message, Payload};
use pdtp_core::{PeerId, Token};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---- strategies ------------------------------------------------------------------------

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn signature() -> impl Strategy<Value = Option<SeedSignature>> {
    proptest::option::of(
        (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<[u8; 32]>())
            .prop_map(|(key, a, b)| SeedSignature { key: SeedKey(key), sig: (a, b) }),
    )
}

fn token() -> impl Strategy<Value = Token> {
    any::<u64>().prop_map(Token)
}

fn content() -> impl Strategy<Value = ContentId> {
    any::<u32>().prop_map(ContentId)
}

/// Mostly short strings of any Unicode, sometimes long ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => ".{0,24}", 1 => ".{200,1500}"]
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        text(),
        any::<u64>(),
        any::<u32>(),
        // Hash counts are random: a count that disagrees with the geometry is still a
        // well-formed frame (the machines reject it with `Manifest::check`).
        prop_oneof![4 => vec(digest(), 0..8), 1 => vec(digest(), 100..400)],
        option::of(
            (any::<u64>(), any::<u32>())
                .prop_map(|(bitrate_bps, first_chunk)| LiveInfo { bitrate_bps, first_chunk }),
        ),
    )
        .prop_map(|(path, size, chunk_size, hashes, live)| Manifest {
            path,
            geometry: Geometry::new(size, chunk_size),
            hashes,
            live,
        })
}

fn interest() -> impl Strategy<Value = Interest> {
    (content(), option::of((any::<u64>(), option::of(any::<u64>())))).prop_map(|(content, range)| Interest {
        content,
        range: range.map(|(start, end)| ByteRange { start, end }),
    })
}

fn peer_request() -> impl Strategy<Value = PeerRequest> {
    (token(), content(), any::<u32>()).prop_map(|(token, content, chunk)| PeerRequest {
        token,
        content,
        chunk,
    })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(ErrorCode::ALL.to_vec())
}

fn notice() -> impl Strategy<Value = Notice> {
    (error_code(), proptest::option::of(token()), text()).prop_map(|(code, token, detail)| Notice {
        code,
        token,
        detail,
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..300).prop_map(|b| Payload::Real(Bytes::from(b))),
        1 => vec(any::<u8>(), 3000..5000).prop_map(|b| Payload::Real(Bytes::from(b))),
        // Within the default payload limit (16 MiB), which the decoder enforces.
        2 => (0..=16u32 << 20, digest()).prop_map(|(len, tag)| Payload::Virtual { len, tag }),
    ]
}

/// Every variant of `Message`, with every field random.
fn message() -> BoxedStrategy<Message> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), option::of(any::<u16>()), prop::bool::ANY).prop_map(
            |(version, id, listen_port, seed)| Message::Hello(Hello {
                version,
                peer_id: PeerId(id),
                listen_port,
                role: if seed { Role::Seed } else { Role::Peer },
            })
        ),
        (any::<u32>(), any::<[u8; 16]>())
            .prop_map(|(id, nonce)| Message::Welcome(Welcome { peer_id: PeerId(id), nonce })),
        text().prop_map(|path| Message::AskInfo(AskInfo { path })),
        (content(), manifest(), signature()).prop_map(|(content, manifest, signature)| Message::TellInfo(
            Box::new(TellInfo { content, manifest, signature })
        )),
        (manifest(), digest(), signature(), option::of(any::<u64>())).prop_map(
            |(manifest, proof, signature, uplink_bps)| Message::Publish(Box::new(Publish {
                manifest,
                proof,
                signature,
                uplink_bps
            }))
        ),
        (text(), content()).prop_map(|(path, content)| Message::Published(Published { path, content })),
        (content(), any::<u32>(), any::<u64>(), vec(digest(), 0..6), any::<u32>(), digest(), signature())
            .prop_map(|(content, first, new_size, hashes, window_start, proof, signature)| {
                Message::AppendChunks(Box::new(AppendChunks {
                    content,
                    first,
                    new_size,
                    hashes,
                    window_start,
                    proof,
                    signature,
                }))
            }),
        interest().prop_map(Message::Request),
        interest().prop_map(Message::Unrequest),
        interest().prop_map(Message::Provide),
        interest().prop_map(Message::Unprovide),
        (
            token(),
            content(),
            any::<u32>(),
            prop::bool::ANY,
            prop::bool::ANY,
            any::<u32>(),
            option::of((text(), any::<u16>()))
        )
            .prop_map(|(token, content, chunk, giver, get, other, connect)| {
                Message::Transfer(TransferOrder {
                    token,
                    content,
                    chunk,
                    side: if giver { Side::Giver } else { Side::Taker },
                    method: if get { Method::Get } else { Method::Put },
                    other: PeerId(other),
                    connect: connect.map(|(host, port)| Endpoint { host, port }),
                    key: pdtp_core::wire::LinkSecret(Box::new([9; 32])),
                    punch: false,
                })
            }),
        (token(), option::of(digest()), any::<u32>())
            .prop_map(|(token, hash, copy_us)| Message::Completed(Completed { token, hash, copy_us })),
        (token(), prop::bool::ANY)
            .prop_map(|(token, accepted)| Message::Verdict(Verdict { token, accepted })),
        peer_request().prop_map(Message::Get),
        peer_request().prop_map(Message::Put),
        notice().prop_map(Message::Error),
        notice().prop_map(Message::Warning),
        (token(), content(), any::<u32>(), payload()).prop_map(|(token, content, chunk, payload)| {
            Message::Data(Data { token, content, chunk, payload })
        }),
    ]
    .boxed()
}

// ---- helpers -----------------------------------------------------------------------------

/// A decoder that also accepts virtual payloads, so every generated message can come back.
fn decoder(limits: Limits) -> Decoder {
    Decoder::new(limits).virtual_payloads(true)
}

fn encode_all(msgs: &[Message]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        encode(m, &mut out).expect("every generated message encodes");
    }
    out
}

/// Pushes `stream` in pieces ending at `cuts` (sorted, deduplicated by the caller) and drains
/// the decoder after each piece.
fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Result<Vec<Message>, DecodeError> {
    let mut d = decoder(Limits::DEFAULT);
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
        d.push(&stream[from..to]);
        from = to;
        while let Some(m) = d.next()? {
            out.push(m);
        }
    }
    assert_eq!(d.buffered(), 0, "bytes left over after the last frame");
    Ok(out)
}

// ---- properties ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (a) Every variant round-trips, and `encoded_len` is exactly what `encode` wrote.
    #[test]
    fn every_message_round_trips(msg in message(), prefix in vec(any::<u8>(), 0..8)) {
        // Encoding appends: whatever was in the buffer before stays untouched.
        let mut out = BytesMut::from(&prefix[..]);
        encode(&msg, &mut out).unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let frame = &out[prefix.len()..];
        prop_assert_eq!(frame.len(), encoded_len(&msg));

        let mut d = decoder(Limits::DEFAULT);
        d.push(frame);
        prop_assert_eq!(d.next(), Ok(Some(msg)));
        prop_assert_eq!(d.next(), Ok(None));
        prop_assert_eq!(d.buffered(), 0);
    }

    /// (b) A stream of frames decodes identically however it is split.
    #[test]
    fn split_streams_decode_identically(
        msgs in vec(message(), 1..8),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = encode_all(&msgs);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(decode_in_pieces(&stream, &[]), Ok(msgs.clone()));
        prop_assert_eq!(decode_in_pieces(&stream, &cuts), Ok(msgs));
    }

    /// (c) Arbitrary bytes, split arbitrarily, never panic, and the receive buffer stays
    /// within what was fed plus one frame under the limits.
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in vec(any::<u8>(), 0..4096),
        piece in 1usize..600,
        max_control in 0u32..2048,
        max_payload in 0u32..2048,
        accept_virtual in any::<bool>(),
    ) {
        let limits = Limits::new(max_control, max_payload);
        let largest_frame = 4 + 1 + 25 + 32 + max_control.max(max_payload) as usize;
        let mut d = Decoder::new(limits).virtual_payloads(accept_virtual);
        let mut fed = 0;
        'feed: for chunk in bytes.chunks(piece) {
            d.push(chunk);
            fed += chunk.len();
            loop {
                // Growth is amortised doubling at worst, of what was fed plus one frame.
                prop_assert!(d.capacity() <= 2 * (fed + largest_frame) + 64,
                    "capacity {} after {} bytes fed", d.capacity(), fed);
                match d.next() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        prop_assert!(d.is_poisoned());
                        prop_assert_eq!(d.next(), Err(DecodeError::Poisoned));
                        break 'feed;
                    }
                }
            }
        }
    }

    /// (c) A length over the limit is refused from the frame head, before the buffer grows
    /// past what was fed, however much the sender follows it with.
    #[test]
    fn oversized_frames_fail_before_buffering(
        max_control in 0u32..100_000,
        max_payload in 0u32..100_000,
        kind in 0u8..3,
        excess in 1u32..1_000_000,
        tail in vec(any::<u8>(), 0..64),
    ) {
        let limits = Limits::new(max_control, max_payload);
        let max = match kind {
            0 => 1 + u64::from(max_control),
            1 => 1 + 25 + u64::from(max_payload),
            _ => 1 + 25 + 32,
        };
        let len = u32::try_from(max + u64::from(excess)).unwrap();
        let mut head = len.to_be_bytes().to_vec();
        head.push(kind);
        head.extend_from_slice(&tail);

        let mut d = decoder(limits);
        let mut failed = None;
        for (fed, b) in head.iter().enumerate() {
            d.push(std::slice::from_ref(b));
            match d.next() {
                Ok(None) => prop_assert!(fed < 4, "no error after {} bytes", fed + 1),
                Ok(Some(m)) => prop_assert!(false, "decoded {:?} from an oversized frame", m),
                Err(e) => { failed = Some(e); break; }
            }
            prop_assert!(d.capacity() <= 64, "capacity {} after {} bytes", d.capacity(), fed + 1);
        }
        let failed = failed.expect("the decoder must refuse the frame");
        prop_assert!(matches!(failed, DecodeError::FrameTooLarge { .. }), "{:?}", failed);
        prop_assert!(d.capacity() <= 64);
        d.push(&[0; 4096]);
        prop_assert!(d.capacity() <= 64, "a poisoned decoder kept buffering");
    }

    /// (d) Every strict prefix of a frame asks for more data; the rest completes it.
    #[test]
    fn truncated_frames_wait_for_more(msg in message(), cut in any::<prop::sample::Index>()) {
        let frame = encode_all(std::slice::from_ref(&msg));
        let cut = cut.index(frame.len());
        let mut d = decoder(Limits::DEFAULT);
        d.push(&frame[..cut]);
        prop_assert_eq!(d.next(), Ok(None));
        prop_assert_eq!(d.next(), Ok(None));
        d.push(&frame[cut..]);
        prop_assert_eq!(d.next(), Ok(Some(msg)));
    }

    /// Decoding is strict: any frame the decoder accepts re-encodes to exactly its bytes,
    /// including frames damaged in transit that still happen to decode.
    #[test]
    fn accepted_frames_are_canonical(
        msgs in vec(message(), 1..4),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut stream = encode_all(&msgs).to_vec();
        for (at, with) in flips {
            let i = at.index(stream.len());
            stream[i] = with;
        }
        let mut d = decoder(Limits::DEFAULT);
        d.push(&stream);
        let mut at = 0;
        while let Ok(Some(m)) = d.next() {
            let again = encode_all(std::slice::from_ref(&m));
            prop_assert_eq!(&stream[at..at + again.len()], &again[..]);
            at += again.len();
        }
    }
}

#[test]
fn manifest_with_wrong_hash_count_is_well_formed() {
    let manifest = Manifest {
        path: "show.mp4".into(),
        geometry: Geometry::new(1_000_000, 250_000),
        hashes: vec![Digest([1; 32])],
        live: None,
    };
    assert!(manifest.check().is_err());
    let msg = Message::TellInfo(Box::new(TellInfo { content: ContentId(1), manifest, signature: None }));
    assert_eq!(decode_in_pieces(&encode_all(std::slice::from_ref(&msg)), &[]), Ok(vec![msg]));
}

#[test]
fn largest_default_payload_is_accepted_and_one_more_byte_is_not() {
    let max = Limits::DEFAULT.max_payload;
    let data = |len| {
        Message::Data(Data {
            token: Token(1),
            content: ContentId(2),
            chunk: 3,
            payload: Payload::Virtual { len, tag: Digest::ZERO },
        })
    };
    assert!(decode_in_pieces(&encode_all(&[data(max)]), &[]).is_ok());
    assert_eq!(
        decode_in_pieces(&encode_all(&[data(max + 1)]), &[]),
        Err(DecodeError::PayloadTooLarge { len: max + 1, max })
    );
}
