//! Leaving the loop politely, for a process about to exit.
//!
//! Closing a socket that still has unread input makes the kernel send a reset, and a reset
//! can make the other end drop what it had received and not yet read: a `get` that exited
//! right after its last `Completed`, while the tracker was still sending it orders, could
//! lose that report and with it the tracker's count of the bytes it verified. So a departing
//! node flushes, half-closes each connection, and reads (and drops) what still comes until
//! the other end closes as well: then everything it sent has been read there.
//!
//! ```text
//!   depart:  flush ──> shutdown(Write) ──> read and drop ... ──> EOF ──> close
//!   other end:           ... reads our last frame, then EOF ──> handle_closed ──> close
//! ```

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mio::Events;

use super::{NodeId, Runtime};

impl Runtime {
    /// Takes a node out of the loop the polite way (see the module docs) and returns whether
    /// every one of its connections ended cleanly within `limit`; the rest are closed then.
    /// The node's machine is not told of the closes: it is gone with the process.
    pub fn depart(&mut self, id: NodeId, limit: Duration) -> std::io::Result<bool> {
        let Some((_node, mut open)) = self.detach(id) else { return Ok(true) };
        let mut shut = BTreeSet::new();
        let end = Instant::now() + limit;
        loop {
            let mut done = Vec::new();
            for &token in &open {
                let Some(c) = self.table.get_mut(token) else {
                    done.push(token);
                    continue;
                };
                // Unlimited budgets: rate caps no longer matter, only getting out clean.
                let flushed = c.flush(usize::MAX).is_ok_and(|_| c.queued() == 0);
                if flushed && shut.insert(token) {
                    c.shutdown_write();
                }
                let read = c.fill(usize::MAX);
                c.read_buf().clear();
                let ended = match read {
                    Ok(fill) => fill.eof && shut.contains(&token),
                    Err(_) => true,
                };
                if ended || c.update_interest(self.poll.registry()).is_err() {
                    done.push(token);
                }
            }
            for token in done {
                open.remove(&token);
                self.table.remove(token, self.poll.registry());
            }
            let now = Instant::now();
            if open.is_empty() || now >= end {
                break;
            }
            match self.poll.poll(&mut self.events, Some((end - now).min(Duration::from_millis(50)))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            // Other nodes' events go their usual way (readiness is edge-triggered: one
            // dropped here would never come again); the next turn serves them.
            let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            for event in events.iter() {
                if !open.contains(&event.token()) {
                    self.dispatch(event, Instant::now());
                } else if let Some(c) = self.table.get_mut(event.token()) {
                    let _ = c.on_ready(event);
                }
            }
            self.events = events;
        }
        let clean = open.is_empty();
        for token in open {
            self.table.remove(token, self.poll.registry());
        }
        Ok(clean)
    }
}
