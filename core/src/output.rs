//! What machines hand to their driver: transmissions and connection directives.

use crate::ids::{ConnId, Endpoint};
use crate::wire::{LinkSecret, Message, Notice};

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
        /// with it (docs/protocol.md, "Peer links"). `None` for the tracker link.
        key: Option<LinkSecret>,
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
