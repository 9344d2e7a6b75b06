use pdtp_core::LiveInfo;

use super::*;

/// Deterministic, non-repeating test bytes.
fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn root_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, FileRoot) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let root = FileRoot::new(dir.path()).unwrap();
    (dir, root)
}

fn real(p: Payload) -> Bytes {
    match p {
        Payload::Real(b) => b,
        Payload::Virtual { .. } => panic!("virtual payload from a disk store"),
    }
}

#[test]
fn manifest_hashes_each_chunk_including_the_short_last_one() {
    let bytes = data(12_345);
    let one = data(700);
    let (_dir, root) = root_with(&[("multi.bin", &bytes), ("one.bin", &one), ("empty.bin", b"")]);

    let m = manifest_for_file(&root, "multi.bin", 5_000).unwrap();
    m.check().unwrap();
    assert_eq!(m.path, "multi.bin");
    assert_eq!(m.geometry, Geometry::new(12_345, 5_000));
    let expected: Vec<Digest> = bytes.chunks(5_000).map(Digest::of).collect();
    assert_eq!(m.hashes, expected);
    assert_eq!(expected.len(), 3);

    let m1 = manifest_for_file(&root, "one.bin", 5_000).unwrap();
    assert_eq!(m1.hashes, vec![Digest::of(&one)]);

    let m0 = manifest_for_file(&root, "empty.bin", 5_000).unwrap();
    assert_eq!((m0.num_chunks(), m0.hashes.len()), (0, 0));

    assert!(manifest_for_file(&root, "../x", 5_000).unwrap_err().to_string().contains(".."));
    assert!(manifest_for_file(&root, "multi.bin", 0).is_err());
}

#[test]
fn seed_store_reads_exact_chunks() {
    let bytes = data(12_345);
    let (_dir, root) = root_with(&[("f.bin", &bytes)]);
    let m = manifest_for_file(&root, "f.bin", 5_000).unwrap();
    let mut store = SeedStore::new(root);
    let c = ContentId(7);
    store.open(c, &m).unwrap();
    let mut joined = Vec::new();
    for i in 0..m.num_chunks() {
        let p = store.read(c, i).unwrap();
        assert!(p.verify(m.geometry.chunk_len(i), &m.hashes[i as usize]));
        joined.extend_from_slice(&real(p));
    }
    assert_eq!(joined, bytes);
    assert!(store.read(c, 3).unwrap_err().to_string().contains("chunk 3 does not exist"));
    assert!(store.read(ContentId(8), 0).unwrap_err().to_string().contains("never opened"));
    assert!(store.write(c, 0, &Payload::Real(Bytes::from_static(b"x"))).is_err());
}

#[test]
fn seed_store_refuses_changed_files_and_escapes() {
    let (dir, root) = root_with(&[("f.bin", &data(100))]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();

    let mut m = manifest_for_file(&root, "f.bin", 64).unwrap();
    m.geometry.size = 99;
    let mut store = SeedStore::new(root);
    let e = store.open(ContentId(1), &m).unwrap_err().to_string();
    assert!(e.contains("is 100 bytes but its manifest says 99"), "{e}");

    m.path = "link".into();
    m.geometry.size = 6;
    let e = store.open(ContentId(2), &m).unwrap_err().to_string();
    assert!(e.contains("outside file_root"), "{e}");
    assert!(store.read(ContentId(2), 0).is_err(), "nothing outside the root is ever served");
}

#[test]
fn peer_store_writes_into_the_output_out_of_order() {
    let bytes = data(12_345);
    let (_src, root) = root_with(&[("f.bin", &bytes)]);
    let m = manifest_for_file(&root, "f.bin", 5_000).unwrap();
    let mut seed = SeedStore::new(root);
    seed.open(ContentId(1), &m).unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("copy.bin");
    let mut peer = PeerStore::new(out_dir.path());
    peer.plan("f.bin", Backing::Output(out.clone()));
    peer.open(ContentId(1), &m).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 12_345, "sized (sparsely) at open");

    for i in [2, 0, 1] {
        assert!(!peer.has(ContentId(1), i));
        let p = seed.read(ContentId(1), i).unwrap();
        peer.write(ContentId(1), i, &p).unwrap();
        assert!(peer.has(ContentId(1), i));
        assert_eq!(peer.read(ContentId(1), i).unwrap(), p);
    }
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    let e = peer.write(ContentId(1), 0, &Payload::Real(Bytes::from_static(b"short"))).unwrap_err();
    assert!(e.to_string().contains("5 bytes, expected 5000"), "{e}");
    let v = Payload::Virtual { len: 5_000, tag: Digest::ZERO };
    assert!(peer.write(ContentId(1), 0, &v).is_err());
    assert!(peer.write(ContentId(1), 3, &Payload::Real(Bytes::from_static(b"x"))).is_err());

    peer.discard(ContentId(1), 1).unwrap();
    assert!(!peer.has(ContentId(1), 1));
    assert!(peer.read(ContentId(1), 1).unwrap_err().to_string().contains("not held"));
}

/// An output file already there (an interrupted download's `FILE.part`) is not truncated:
/// its whole chunks are offered once as leftovers, readable until discarded, and the file is
/// cut to the content's size.
#[test]
fn an_existing_output_offers_its_whole_chunks_as_leftovers() {
    let bytes = data(12_345);
    let (_src, root) = root_with(&[("f.bin", &bytes)]);
    let m = manifest_for_file(&root, "f.bin", 5_000).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("copy.bin.part");

    // 7 000 bytes: chunk 0 whole, chunk 1 cut short (not offered).
    std::fs::write(&out, &bytes[..7_000]).unwrap();
    let mut peer = PeerStore::new(out_dir.path());
    peer.plan("f.bin", Backing::Output(out.clone()));
    peer.open(ContentId(1), &m).unwrap();
    assert_eq!(peer.leftovers(ContentId(1)), 0..1);
    assert_eq!(peer.leftovers(ContentId(1)), 0..0, "offered once");
    assert_eq!(real(peer.read(ContentId(1), 0).unwrap()), bytes[..5_000]);
    assert!(!peer.has(ContentId(1), 1));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 12_345);

    // Longer than the content: every chunk offered, the tail cut off.
    let mut long = bytes.clone();
    long.extend_from_slice(&[7; 3_000]);
    std::fs::write(&out, &long).unwrap();
    let mut peer = PeerStore::new(out_dir.path());
    peer.plan("f.bin", Backing::Output(out.clone()));
    peer.open(ContentId(1), &m).unwrap();
    assert_eq!(peer.leftovers(ContentId(1)), 0..3);
    assert_eq!(real(peer.read(ContentId(1), 2).unwrap()), bytes[10_000..]);
    peer.discard(ContentId(1), 2).unwrap();
    assert!(peer.read(ContentId(1), 2).is_err(), "a discarded leftover is not held");
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    // A new output offers nothing.
    let mut peer = PeerStore::new(out_dir.path());
    peer.plan("f.bin", Backing::Output(out_dir.path().join("new.bin.part")));
    peer.open(ContentId(1), &m).unwrap();
    assert_eq!(peer.leftovers(ContentId(1)), 0..0);
}

#[test]
fn peer_store_cache_is_anonymous() {
    let bytes = data(5_000);
    let (_src, root) = root_with(&[("one.bin", &bytes)]);
    let m = manifest_for_file(&root, "one.bin", 5_000).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut peer = PeerStore::new(cache.path());
    peer.open(ContentId(3), &m).unwrap();
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "cache file is unlinked at once");
    peer.write(ContentId(3), 0, &Payload::Real(Bytes::from(bytes.clone()))).unwrap();
    assert_eq!(real(peer.read(ContentId(3), 0).unwrap()), bytes);
}

#[test]
fn live_cache_is_a_bounded_ring() {
    let cache = tempfile::tempdir().unwrap();
    let mut peer = PeerStore::new(cache.path()).with_live_slots(2);
    let m = Manifest {
        path: "show".into(),
        geometry: Geometry::new(0, 100),
        hashes: vec![],
        live: Some(LiveInfo { bitrate_bps: 8_000, first_chunk: 0 }),
    };
    // A planned output is ignored for live content: it stays in the ring.
    peer.plan("show", Backing::Output(cache.path().join("never-created")));
    peer.open(ContentId(1), &m).unwrap();
    let chunk = |i: u8, len: usize| Payload::Real(Bytes::from(vec![i; len]));
    for i in 0..5u32 {
        peer.write(ContentId(1), i, &chunk(i as u8, 100 - i as usize)).unwrap();
    }
    assert!(!peer.has(ContentId(1), 2), "overwritten by chunk 4");
    assert!(peer.read(ContentId(1), 2).is_err());
    assert_eq!(peer.read(ContentId(1), 3).unwrap(), chunk(3, 97));
    assert_eq!(peer.read(ContentId(1), 4).unwrap(), chunk(4, 96));
    assert!(!cache.path().join("never-created").exists());
    assert!(peer.write(ContentId(1), 5, &chunk(5, 101)).is_err(), "longer than a chunk");
}

#[test]
fn disk_full_and_unwritable_outputs_are_named() {
    let (_src, root) = root_with(&[("f.bin", &data(10))]);
    let m = manifest_for_file(&root, "f.bin", 5).unwrap();

    // /dev/full fails every write with ENOSPC, exactly like a full disk.
    let mut peer = PeerStore::new(std::env::temp_dir());
    peer.plan("f.bin", Backing::Output("/dev/full".into()));
    peer.open(ContentId(1), &m).unwrap();
    let e =
        peer.write(ContentId(1), 0, &Payload::Real(Bytes::from_static(b"12345"))).unwrap_err().to_string();
    assert!(e.contains("writing chunk 0 to /dev/full") && e.contains("No space left"), "{e}");
    assert!(!peer.has(ContentId(1), 0), "a failed write is not recorded as held");

    // A path below a regular file cannot be created (works even as root).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    let bad = dir.path().join("plain/out.bin");
    let mut peer = PeerStore::new(dir.path());
    peer.plan("f.bin", Backing::Output(bad.clone()));
    let e = peer.open(ContentId(1), &m).unwrap_err().to_string();
    assert!(e.contains(&format!("opening the output {}", bad.display())), "{e}");
}

#[test]
fn deferred_reads_are_placeholders_that_name_their_file_range() {
    let bytes = data(12_345);
    let (_dir, root) = root_with(&[("multi.bin", &bytes)]);
    let m = manifest_for_file(&root, "multi.bin", 5_000).unwrap();
    let mut store = SeedStore::new(root);
    let c = ContentId(3);
    store.open(c, &m).unwrap();

    // Off: real bytes, which are never taken for a placeholder.
    let real_bytes = real(store.read(c, 2).unwrap());
    assert_eq!(&real_bytes[..], &bytes[10_000..]);
    assert!(store.file_range(c, 2, &real_bytes).is_none());

    store.set_deferred(true);
    for (chunk, start, len) in [(0u32, 0u64, 5_000usize), (2, 10_000, 2_345)] {
        let p = real(store.read(c, chunk).unwrap());
        assert_eq!(p.len(), len, "a placeholder has the chunk's length");
        let r = store.file_range(c, chunk, &p).expect("a placeholder names its range");
        assert_eq!((r.offset, r.len), (start, len));
        let mut back = vec![0; r.len];
        r.file.read_exact_at(&mut back, r.offset).unwrap();
        assert_eq!(&back[..], &bytes[start as usize..start as usize + len]);
        // Asked about another chunk (another length), the placeholder does not fit.
        assert!(store.file_range(c, if chunk == 0 { 2 } else { 0 }, &p).is_none());
    }
    assert!(store.read(c, 3).is_err(), "out of range stays an error");
    store.set_deferred(false);
    assert_eq!(&real(store.read(c, 0).unwrap())[..], &bytes[..5_000]);
}

/// Two content paths naming one file (a symlink) are served side by side; a file replaced
/// by a rename, or a symlink pointed elsewhere, is listed by `replaced` while the old handle
/// still reads the bytes that were hashed; a new version of one path leaves the other alone.
#[test]
fn replaced_files_are_found_by_their_content_path_and_served_from_the_hashed_handle() {
    let old = data(9_000);
    let (dir, root) = root_with(&[("a.bin", &old), ("b.bin", b"other bytes")]);
    std::os::unix::fs::symlink(dir.path().join("a.bin"), dir.path().join("alias.bin")).unwrap();
    let mut store = SeedStore::new(root);
    let (a, alias) = (ContentId(1), ContentId(2));
    let ma = store.hash("a.bin", 4_000).unwrap();
    let malias = store.hash("alias.bin", 4_000).unwrap();
    store.open(a, &ma).unwrap();
    store.open(alias, &malias).unwrap();
    assert!(store.replaced().is_empty());
    assert_eq!(real(store.read(alias, 0).unwrap()), old[..4_000]);

    std::fs::write(dir.path().join("next.bin"), data(3_000)).unwrap();
    std::fs::rename(dir.path().join("next.bin"), dir.path().join("a.bin")).unwrap();
    std::fs::remove_file(dir.path().join("alias.bin")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("b.bin"), dir.path().join("alias.bin")).unwrap();
    assert_eq!(store.replaced(), [a, alias]);
    assert_eq!(store.changed(a), None, "a rename leaves the served file as it was");
    assert_eq!(real(store.read(a, 2).unwrap()), old[8_000..]);

    let new = store.hash("a.bin", 4_000).unwrap();
    store.open(ContentId(3), &new).unwrap();
    assert_eq!(store.replaced(), [alias], "the new version is the file a.bin names");
    assert!(store.read(a, 0).is_err(), "the old version of a.bin is closed");
    assert_eq!(real(store.read(alias, 0).unwrap()), old[..4_000], "the other path is served on");
}

/// A file rewritten in place after it was hashed and before its manifest was opened is
/// changed from the start: its bytes are not those the manifest describes.
#[test]
fn a_file_rewritten_between_hashing_and_opening_counts_as_changed() {
    use std::os::unix::fs::FileExt;
    let (dir, root) = root_with(&[("a.bin", &data(9_000))]);
    let mut store = SeedStore::new(root);
    let m = store.hash("a.bin", 4_000).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let f = std::fs::OpenOptions::new().write(true).open(dir.path().join("a.bin")).unwrap();
    f.write_all_at(b"other", 0).unwrap();
    drop(f);
    store.open(ContentId(1), &m).unwrap();
    assert!(store.changed(ContentId(1)).is_some_and(|why| why.contains("rewritten in place")));
}

/// A file written a moment ago is still being written as far as republishing goes.
#[test]
fn a_file_just_written_was_modified_within_a_second() {
    let (_dir, root) = root_with(&[("a.bin", &data(100))]);
    let store = SeedStore::new(root);
    assert!(store.modified_within("a.bin", std::time::Duration::from_secs(60)));
    assert!(!store.modified_within("a.bin", std::time::Duration::ZERO));
    assert!(!store.modified_within("missing.bin", std::time::Duration::from_secs(60)));
}
