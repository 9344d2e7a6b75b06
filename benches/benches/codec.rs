//! Wire codec throughput: data frames (bytes/s) and control frames (messages/s).
//!
//! `cargo bench -p pdtp-benches --bench codec -- --warm-up-time 1 --measurement-time 3`;
//! figures are recorded in `docs/performance.md`.

#![allow(clippy::unwrap_used, reason = "a benchmark: a failed encode should abort it")]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pdtp_core::wire::codec::{Decoder, Limits, encode, encode_data_header, encoded_len};
use pdtp_core::wire::{Completed, Data, Method, Side, TellInfo, TransferOrder};
use pdtp_core::{ContentId, Digest, Endpoint, Geometry, Manifest, Message, Payload, PeerId, Token};

/// A data message with `len` bytes of real payload.
fn data(len: usize) -> Message {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    Message::Data(Data {
        token: Token(0x1234_5678_9abc_def0),
        content: ContentId(3),
        chunk: 1_234,
        payload: Payload::Real(Bytes::from(bytes)),
    })
}

/// Benchmarks `encode` of `msg` into a reused buffer, and decoding its frame `wire`.
fn encode_and_decode<M: Measurement>(
    g: &mut BenchmarkGroup<'_, M>,
    name: &str,
    msg: &Message,
    wire: &BytesMut,
) {
    g.bench_with_input(BenchmarkId::new("encode", name), msg, |b, msg| {
        let mut out = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            encode(black_box(msg), &mut out).unwrap();
            black_box(&out);
        })
    });
    g.bench_with_input(BenchmarkId::new("decode", name), wire, |b, wire| {
        let mut dec = Decoder::new(Limits::DEFAULT);
        b.iter(|| {
            dec.push(black_box(wire));
            black_box(dec.next().unwrap().unwrap());
        })
    });
}

/// Encodes `msg` into a fresh buffer (the input for the decode benchmarks).
fn frame(msg: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    encode(msg, &mut out).unwrap();
    out
}

fn data_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("data");
    for (name, len) in [("256KiB", 256 * 1024), ("5KiB", 5 * 1024)] {
        let msg = data(len);
        let Message::Data(d) = &msg else { unreachable!() };
        let wire = frame(&msg);
        g.throughput(Throughput::Bytes(len as u64));

        // What a runtime does to send: the frame head, then the payload `Bytes` as is.
        g.bench_with_input(BenchmarkId::new("encode_head", name), d, |b, d| {
            let mut out = BytesMut::with_capacity(64);
            b.iter(|| {
                out.clear();
                encode_data_header(black_box(d), &mut out).unwrap();
                black_box(&out);
            })
        });
        // The copying encoder (the whole frame in one buffer); receive: copy the frame into the
        // decoder's buffer, split the payload out.
        encode_and_decode(&mut g, name, &msg, &wire);
        // Both ends: encode the whole frame, feed it to a decoder, take the payload out.
        g.bench_with_input(BenchmarkId::new("roundtrip", name), &msg, |b, msg| {
            let mut out = BytesMut::with_capacity(wire.len());
            let mut dec = Decoder::new(Limits::DEFAULT);
            b.iter(|| {
                out.clear();
                encode(black_box(msg), &mut out).unwrap();
                dec.push(&out);
                black_box(dec.next().unwrap().unwrap());
            })
        });
    }
    g.finish();
}

fn control_messages() -> Vec<(&'static str, Message)> {
    let transfer = Message::Transfer(TransferOrder {
        token: Token(0x9e37_79b9_7f4a_7c15),
        content: ContentId(1),
        chunk: 17_000,
        side: Side::Taker,
        method: Method::Get,
        other: PeerId(4_321),
        connect: Some(Endpoint { host: "192.168.100.200".into(), port: 8000 }),
        key: pdtp_core::wire::LinkSecret(Box::new([7; 32])),
        punch: false,
    });
    let completed = Message::Completed(Completed {
        token: Token(0x9e37_79b9_7f4a_7c15),
        hash: Some(Digest::of(b"chunk 17000")),
        copy_us: 1_250_000,
    });
    let hashes: Vec<Digest> = (0u32..400).map(|i| Digest::of(&i.to_be_bytes())).collect();
    let tell_info = Message::TellInfo(Box::new(TellInfo {
        content: ContentId(1),
        manifest: Manifest {
            path: "shows/2026/episode-17.mp4".into(),
            geometry: Geometry::new(400 * 250_000 - 1_234, 250_000),
            hashes,
            live: None,
        },
        signature: None,
    }));
    vec![("transfer", transfer), ("completed", completed), ("tell_info_400", tell_info)]
}

fn control_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("control");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in control_messages() {
        let wire = frame(&msg);
        encode_and_decode(&mut g, name, &msg, &wire);
        // What the simulator charges per control message.
        g.bench_with_input(BenchmarkId::new("encoded_len", name), &msg, |b, msg| {
            b.iter(|| black_box(encoded_len(black_box(msg))))
        });
    }
    g.finish();
}

criterion_group!(benches, data_frames, control_frames);
criterion_main!(benches);
