//! In-order delivery: moves verified chunks from a [`PeerStore`] to a [`Sink`] in chunk order,
//! as far as the sink has room.
//!
//! Only chunks in the store are delivered, and the store only holds chunks the peer verified,
//! so no unverified byte ever reaches the sink. When the sink is full, [`Delivery::pump`] stops;
//! the caller calls it again after the sink drains (a writable event, or a flush).

use pdtp_core::{ChunkIndex, ChunkStore, ContentId, Payload, StoreError};

use crate::sink::{Sink, SinkError};
use crate::storage::PeerStore;

/// A cursor over one content's chunks, delivering them in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    content: ContentId,
    next: ChunkIndex,
    end: Option<ChunkIndex>,
}

/// Why delivery stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// A held chunk could not be read back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl Delivery {
    /// Delivers chunks `first..end` of `content` (`end: None` for a live stream).
    pub fn new(content: ContentId, first: ChunkIndex, end: Option<ChunkIndex>) -> Self {
        Self { content, next: first, end }
    }

    /// The next chunk to deliver.
    pub fn next(&self) -> ChunkIndex {
        self.next
    }

    /// Whether every chunk up to `end` has been handed to the sink (it may still be flushing).
    pub fn is_done(&self) -> bool {
        self.end.is_some_and(|e| self.next >= e)
    }

    /// Jumps forward to `chunk` (a live window moved past chunks never received); no-op if
    /// `chunk` is not ahead.
    pub fn skip_to(&mut self, chunk: ChunkIndex) {
        self.next = self.next.max(chunk);
    }

    /// Flushes the sink, pushes held chunks in order while it has room, and flushes again;
    /// returns the number of chunks pushed.
    pub fn pump(&mut self, store: &mut PeerStore, sink: &mut Sink) -> Result<u32, DeliveryError> {
        sink.flush()?;
        let mut pushed = 0;
        while !self.is_done() && sink.has_room() && store.has(self.content, self.next) {
            match store.read(self.content, self.next)? {
                Payload::Real(bytes) => sink.push(bytes)?,
                Payload::Virtual { .. } => {
                    return Err(StoreError::new("a virtual payload cannot be delivered to a sink").into());
                }
            }
            self.next += 1;
            pushed += 1;
        }
        sink.flush()?;
        Ok(pushed)
    }
}
