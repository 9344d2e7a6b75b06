//! `Sink::stdout` when stdout is a pipe (`pdtp-node get … -o - | player`): the test re-runs
//! its own binary as a child whose stdout is a pipe, and checks every byte arrives in order.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use mio::{Events, Poll, Token};
use pdtp_net_mio::sink::Sink;

const BEGIN: &[u8] = b"<<<PDTP-BEGIN>>>";
const END: &[u8] = b"<<<PDTP-END>>>";
const LEN: usize = 3 * 1024 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
}

/// The child's side; run only by `stdout_pipe_receives_every_byte_in_order`.
#[test]
#[ignore = "helper: run as a child process by stdout_pipe_receives_every_byte_in_order"]
fn child_writes_through_sink_stdout() {
    let mut sink = Sink::stdout(64 * 1024).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4);
    let data = pattern(LEN);
    let mut parts = std::iter::once(Bytes::from_static(BEGIN))
        .chain(data.chunks(10_000).map(Bytes::copy_from_slice))
        .chain(std::iter::once(Bytes::from_static(END)))
        .peekable();
    let mut polls = 0;
    loop {
        while sink.has_room() {
            let Some(p) = parts.next() else { break };
            sink.push(p).unwrap();
        }
        sink.flush().unwrap();
        if sink.queued() == 0 && parts.peek().is_none() {
            break;
        }
        if sink.queued() == 0 {
            continue; // The pipe took everything: produce more before waiting.
        }
        sink.update_interest(poll.registry(), Token(1)).unwrap();
        polls += 1;
        assert!(polls < 1_000_000, "safety bound");
        poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
    }
    sink.update_interest(poll.registry(), Token(1)).unwrap();
}

#[test]
fn stdout_pipe_receives_every_byte_in_order() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_writes_through_sink_stdout", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(child.wait().unwrap().success(), "the child test failed");
    // The test harness prints around the test; the sink's bytes sit between the markers.
    let start = out.windows(BEGIN.len()).position(|w| w == BEGIN).expect("begin marker") + BEGIN.len();
    let end = start + out[start..].windows(END.len()).position(|w| w == END).expect("end marker");
    assert_eq!(end - start, LEN);
    assert!(out[start..end] == pattern(LEN)[..], "bytes differ");
}
