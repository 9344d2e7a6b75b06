//! What machines hand to their driver: transmissions and connection directives.

use crate::ids::{ConnId, Endpoint};
use crate::wire::{LinkSecret, Message, Notice};

/// How a [`Transmit::Connect`] dials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dial {
    /// From any local port: the connecting end of a peer link, or a reachability probe.
    Plain,
    /// From the node's listening port if it has one, so that a NAT in front of it maps this
    /// connection as it maps that port (the tracker link: the tracker learns the mapping
    /// from it and tells peers that punch through to this node).
    FromListenPort,
    /// One end of a hole punch (docs/protocol.md, "Reachability"): both ends dial each other
    /// at once from their listening ports (TCP simultaneous open through both NATs). The
    /// giver's end is the link's accepting end (`accepting`: it waits for the link id and
    /// the taker's `Hello`), however the connection came about.
    Punch {
        /// Whether this end acts as the accepting end of the peer link.
        accepting: bool,
    },
}

/// One instruction for the driver's transport, drained with `poll_transmit()`.
///
/// Instructions for one connection must be carried out in the order they are polled:
/// a `Connect` precedes the first `Send` on that connection, and a `Close` follows the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send `msg` on `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: Message,
    },
    /// Open a connection to `endpoint`; the machine already named it `conn`. The driver
    /// answers with `handle_connected(conn)` or `handle_closed(conn)`.
    Connect {
        /// Handle chosen by the machine for the new connection.
        conn: ConnId,
        /// Where to connect.
        endpoint: Endpoint,
        /// For a peer link, the secret of the order it is opened for: the link is sealed
        /// with it (docs/protocol.md, "Peer links"). `None` for the tracker link, and for
        /// the giver's end of a hole punch (the accepting end: it finds the secret by the id
        /// the taker sends, as on a link it accepted).
        key: Option<LinkSecret>,
        /// From which local port, and in which role.
        dial: Dial,
    },
    /// Close `conn` once everything queued on it has been sent. The machine has already
    /// forgotten it; the driver must not report `handle_closed` for it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, if the machine closed it over a problem (also sent as an `Error` first).
        reason: Option<Notice>,
    },
}
