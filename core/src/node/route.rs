//! Routing received messages: what the engine handles itself on the tracker link and on
//! peer links, and what it hands up to the role.

use super::{Node, NodeEvent, Up};
use crate::ids::ConnId;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{ErrorCode, Message, Method, Notice, PROTOCOL_VERSION};

impl<S: ChunkStore, E: From<NodeEvent>> Node<S, E> {
    pub(super) fn tracker_message(&mut self, now: Time, conn: ConnId, msg: Message) -> Up {
        match msg {
            Message::Welcome(w) if self.nonce.is_none() => {
                self.nonce = Some(w.nonce);
                self.ever_welcomed = true;
                self.retries = 0;
                Up::Welcomed
            }
            Message::Transfer(order) => {
                self.on_order(now, order);
                Up::None
            }
            Message::Verdict(v) => {
                self.on_verdict(now, v.token, v.accepted);
                Up::None
            }
            Message::Error(notice) => {
                // The role reports it (a seed's refusal is its own event).
                self.close(now, conn, None);
                self.tracker_gone(now, Some(notice))
            }
            Message::Welcome(_)
            | Message::Hello(_)
            | Message::Get(_)
            | Message::Put(_)
            | Message::Data(_)
            | Message::AskInfo(_)
            | Message::Publish(_)
            | Message::Request(_)
            | Message::Unrequest(_)
            | Message::Provide(_)
            | Message::Unprovide(_)
            | Message::Completed(_) => {
                let n = Notice::new(ErrorCode::Unexpected, format!("tracker sent {}", msg.kind()));
                self.emit(NodeEvent::Problem(n));
                Up::None
            }
            other => Up::Tracker(other),
        }
    }

    pub(super) fn peer_message(&mut self, now: Time, conn: ConnId, msg: Message) -> Up {
        let remote = self.links.get(conn).and_then(|l| l.remote);
        match (msg, remote) {
            (Message::Hello(h), None) => {
                if h.version != PROTOCOL_VERSION {
                    let n = Notice::new(ErrorCode::BadVersion, format!("version {}", h.version));
                    self.close(now, conn, Some(n));
                } else {
                    self.links.set_remote(conn, h.peer_id);
                }
                Up::None
            }
            (_, None) => {
                self.close(now, conn, Some(Notice::new(ErrorCode::HelloExpected, "hello first")));
                Up::None
            }
            (Message::Get(req), Some(remote)) => {
                self.on_request(now, conn, remote, Method::Get, req);
                Up::None
            }
            (Message::Put(req), Some(remote)) => {
                self.on_request(now, conn, remote, Method::Put, req);
                Up::None
            }
            (Message::Data(data), Some(remote)) => {
                self.on_data(now, conn, remote, data);
                Up::None
            }
            (Message::Warning(n), Some(_)) => {
                self.on_peer_warning(now, conn, n);
                Up::None
            }
            (Message::Error(n), Some(_)) => {
                self.emit(NodeEvent::Problem(n));
                self.close(now, conn, None);
                Up::None
            }
            (other, Some(_)) => {
                let n = Notice::new(ErrorCode::Unexpected, format!("{} on a peer link", other.kind()));
                self.close(now, conn, Some(n));
                Up::None
            }
        }
    }
}
