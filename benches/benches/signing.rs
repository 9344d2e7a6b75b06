//! What a seed signature costs: signing a statement (the seed, per publish and live append),
//! checking one (the tracker per append, each viewer per manifest and append), and extending
//! the running chain by one chunk hash (everyone, per chunk).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pdtp_core::Digest;
use pdtp_core::signing::{Chain, SigningKey};

fn signing(c: &mut Criterion) {
    let key = SigningKey::from_secret([7; 32]);
    let mut chain = Chain::start("shows/live.ts", 250_000, Some(3_000_000));
    chain.push(&Digest::of(b"chunk 0"));
    let statement = chain.statement(250_000, false);
    let signature = key.sign(&statement);
    let mut g = c.benchmark_group("signing");
    g.bench_function("sign", |b| b.iter(|| black_box(key.sign(black_box(&statement)))));
    g.bench_function("verify", |b| b.iter(|| black_box(signature.verifies(black_box(&statement)))));
    let hash = Digest::of(b"chunk 1");
    g.bench_function("chain_push", |b| {
        b.iter(|| {
            let mut c = chain;
            c.push(black_box(&hash));
            black_box(c)
        })
    });
    g.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
