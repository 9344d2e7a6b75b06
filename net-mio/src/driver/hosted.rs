//! What the loop needs from a hosted node: the machine's sans-io surface, plus the
//! application around it (events, extra I/O objects such as a sink or a stats server).

use std::time::Instant;

use mio::event::Event;
use mio::{Registry, Token};
use pdtp_core::wire::Data;
use pdtp_core::wire::codec::DecodeError;
use pdtp_core::wire::{LinkSecret, Notice};
use pdtp_core::{ConnId, Endpoint, Message, Time, Transmit};

use crate::conn::FileRange;
use crate::secure::{LinkKey, TrackerKey};
use crate::stats::RateStats;

/// Where a hosted node stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Still working (a tracker or seed always is, until it fails).
    Running,
    /// Finished its job (a peer delivered every byte).
    Done,
    /// Stopped with an error, described for the operator in one line.
    Failed(String),
}

/// The loop's view of one node for a callback: registry, the turn's clock reading, facts the
/// loop keeps about the node.
pub struct Cx<'a> {
    /// The poll's registry (for sinks, pipes, the stats server).
    pub registry: &'a Registry,
    /// Wall time, read once per turn.
    pub now: Instant,
    /// The same instant as core time.
    pub time: Time,
    /// Rates this node's connections reached.
    pub rates: RateStats,
    /// Connections refused at the cap, loop-wide.
    pub refused: u64,
    /// The last failed connect of this node, for error messages.
    pub connect_error: Option<&'a str>,
}

/// A node the loop can host: one core machine and the application around it.
///
/// The first group mirrors the machines' sans-io methods; the driver calls them exactly as
/// `pdtp_core`'s run-loop contract says. The second group is the application's.
pub trait Hosted {
    /// A peer link (or, for the tracker, any connection) was accepted from `remote_host`.
    fn accept(&mut self, now: Time, remote_host: String) -> Result<ConnId, Notice>;
    /// [`Hosted::accept`] with the remote's port, which the tracker keeps (a node dials it
    /// from its listening port: where a NAT maps that port).
    fn accept_from(
        &mut self,
        now: Time,
        remote_host: String,
        _remote_port: Option<u16>,
    ) -> Result<ConnId, Notice> {
        self.accept(now, remote_host)
    }
    /// A decoded message arrived on `conn`.
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message);
    /// Bytes arrived on peer link `conn` (a frame's part or whole frames), before they are
    /// decoded: a copy under way there is moving. Only a peer's machine uses it.
    fn handle_progress(&mut self, _now: Time, _conn: ConnId) {}
    /// A frame on `conn` could not be decoded. Returns `true` when the machine closes the
    /// connection itself (the tracker); otherwise the driver sends the error, closes the
    /// connection and reports it with [`Hosted::handle_closed`].
    fn handle_malformed(&mut self, now: Time, conn: ConnId, err: &DecodeError) -> bool;
    /// An outgoing connection completed.
    fn handle_connected(&mut self, now: Time, conn: ConnId);
    /// A connection failed or the remote closed it.
    fn handle_closed(&mut self, now: Time, conn: ConnId);
    /// The machine's deadline passed.
    fn handle_timeout(&mut self, now: Time);
    /// The machine's next transmission.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The machine's next deadline.
    fn poll_timeout(&self) -> Option<Time>;

    /// Where a `Data` message's payload can be sent from a file with `sendfile(2)` instead
    /// of from memory: `Some` only for a placeholder payload the node's store handed out.
    fn file_payload(&self, _data: &Data) -> Option<FileRange> {
        None
    }

    /// The tracker's link key: every connection it accepts is an encrypted link it
    /// answers with this key (`secure`). `None` for seeds and peers.
    fn link_key(&self) -> Option<&TrackerKey> {
        None
    }
    /// The key the node's tracker must prove (`None`: learn it from the handshake).
    fn tracker_pin(&self) -> Option<LinkKey> {
        None
    }
    /// Where the node's tracker is (seeds and peers): a connection there is the encrypted
    /// tracker link, the first one and every reconnection.
    fn tracker(&self) -> Option<&Endpoint> {
        None
    }
    /// The secret of the peer link whose id an accepted connection sent (an order of this
    /// node awaits it); `None`: no such order, yet.
    fn peer_link_key(&self, _id: &[u8; 16]) -> Option<LinkSecret> {
        None
    }

    /// Registers extra I/O objects under tokens `base..base + extra_tokens()`.
    fn register(&mut self, _registry: &Registry, _base: Token) -> std::io::Result<()> {
        Ok(())
    }
    /// How many tokens [`Hosted::register`] needs.
    fn extra_tokens(&self) -> usize {
        0
    }
    /// A readiness event for one of the extra tokens.
    fn extra_event(&mut self, _cx: &mut Cx<'_>, _event: &Event) {}
    /// The application's own next deadline (sink retry, stats idle clients, live input).
    fn extra_timeout(&self) -> Option<Instant> {
        None
    }
    /// Called when [`Hosted::extra_timeout`] has passed.
    fn extra_timer(&mut self, _cx: &mut Cx<'_>) {}
    /// Drains the machine's events and does the application's work; called every turn
    /// after the machine's inputs.
    fn after(&mut self, cx: &mut Cx<'_>);
    /// Whether [`Hosted::after`] stopped with work left (the loop then does not sleep).
    fn has_work(&self) -> bool {
        false
    }
    /// Where the node stands.
    fn status(&self) -> Status;
}
