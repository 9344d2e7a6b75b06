use std::io::Read;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use mio::{Events, Poll};

use super::*;

fn mkfifo(dir: &Path) -> PathBuf {
    let p = dir.join("out.fifo");
    let st = Command::new("mkfifo").arg(&p).status().unwrap();
    assert!(st.success(), "mkfifo failed");
    p
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Retries `flush` until the FIFO's reader has opened it (bounded; the reader is a thread).
fn wait_for_reader(sink: &mut Sink) {
    for _ in 0..5_000 {
        sink.flush().unwrap();
        if !sink.awaiting_reader() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the reader never opened the FIFO");
}

#[test]
fn classifies_outputs() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(OutputKind::of(Path::new("-")), OutputKind::Stdout);
    let f = dir.path().join("new.bin");
    assert_eq!(OutputKind::of(&f), OutputKind::File(f.clone()));
    std::fs::write(&f, b"x").unwrap();
    assert_eq!(OutputKind::of(&f), OutputKind::File(f.clone()));
    let fifo = mkfifo(dir.path());
    assert_eq!(OutputKind::of(&fifo), OutputKind::Stream(fifo.clone()));
    assert_eq!(OutputKind::of(Path::new("/dev/null")), OutputKind::Stream("/dev/null".into()));
}

#[test]
fn file_sink_writes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.bin");
    let mut sink = Sink::open(&OutputKind::File(path.clone()), 1 << 20).unwrap();
    let data = pattern(30_000);
    for part in data.chunks(4_096) {
        sink.push(Bytes::copy_from_slice(part)).unwrap();
    }
    assert_eq!(sink.queued(), 30_000);
    assert_eq!(sink.flush().unwrap(), 30_000);
    assert_eq!((sink.queued(), sink.written()), (0, 30_000));
    drop(sink);
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

#[test]
fn disk_full_is_reported_with_the_target() {
    let mut sink = Sink::file(Path::new("/dev/full"), 1024).unwrap();
    sink.push(Bytes::from_static(b"hello")).unwrap();
    let e = sink.flush().unwrap_err().to_string();
    assert!(e.starts_with("/dev/full: write failed after 0 bytes") && e.contains("No space left"), "{e}");
    let e = Sink::file(Path::new("/nonexistent-dir/x"), 1).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent-dir/x: cannot open"), "{e}");
}

#[test]
fn slow_fifo_reader_applies_backpressure_and_gets_every_byte_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let cap = 256 * 1024;
    let data = pattern(4 * 1024 * 1024);

    let mut sink = Sink::open(&OutputKind::of(&fifo), cap).unwrap();
    assert!(sink.awaiting_reader(), "no reader yet: the open waits instead of blocking");

    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(reader_path).unwrap();
        go_rx.recv().unwrap(); // Stay silent (a stalled player) until told to read.
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        got
    });
    wait_for_reader(&mut sink);

    // Phase 1: the reader is stalled. Push while there is room; the pipe fills, then the queue.
    let mut parts = data.chunks(16 * 1024).map(Bytes::copy_from_slice).peekable();
    let mut pushed = 0usize;
    while sink.has_room() {
        let p = parts.next().unwrap();
        pushed += p.len();
        sink.push(p).unwrap();
        sink.flush().unwrap();
    }
    assert!(sink.queued() >= cap, "stopped because the queue reached its cap");
    assert!(sink.queued() < cap + 16 * 1024, "bounded by cap + one push");
    assert!((sink.written() as usize) < pushed, "the pipe is full: not everything could be written");
    assert!(matches!(sink.push(Bytes::from_static(b"x")), Err(SinkError::Full { .. })));
    assert_eq!(sink.flush().unwrap(), 0, "nothing moves while the reader is stalled");

    // Phase 2: the reader reads; drive the sink from mio writable events.
    go_tx.send(()).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let token = Token(1);
    let mut polls = 0;
    loop {
        sink.flush().unwrap();
        while sink.has_room() {
            let Some(p) = parts.next() else { break };
            sink.push(p).unwrap();
        }
        sink.flush().unwrap();
        sink.update_interest(poll.registry(), token).unwrap();
        if sink.queued() == 0 && parts.peek().is_none() {
            break;
        }
        if sink.queued() == 0 {
            continue; // The pipe took everything: produce more before waiting.
        }
        polls += 1;
        assert!(polls < 100_000, "safety bound on the loop");
        // The timeout is only a safety bound; a writable event normally wakes us.
        poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
    }
    assert_eq!(sink.written() as usize, data.len());
    sink.update_interest(poll.registry(), token).unwrap();
    drop(sink); // Closes the write end: the reader sees EOF.
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes arrived out of order or corrupted");
}

#[test]
fn reader_going_away_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let mut sink = Sink::stream(&fifo, 1 << 20).unwrap();
    let (opened_tx, opened_rx) = mpsc::channel::<()>();
    let (close_tx, close_rx) = mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(reader_path).unwrap();
        opened_tx.send(()).unwrap();
        close_rx.recv().unwrap();
        let mut first = [0u8; 3];
        f.read_exact(&mut first).unwrap();
        first
    });
    wait_for_reader(&mut sink);
    opened_rx.recv().unwrap();
    sink.push(Bytes::from_static(b"abc")).unwrap();
    assert_eq!(sink.flush().unwrap(), 3);
    close_tx.send(()).unwrap();
    assert_eq!(&reader.join().unwrap(), b"abc");
    sink.push(Bytes::from_static(b"more")).unwrap();
    match sink.flush() {
        Err(SinkError::ReaderGone { written: 3, .. }) => {}
        other => panic!("expected ReaderGone, got {other:?}"),
    }
}
