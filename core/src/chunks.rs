//! Chunk math: byte ranges to chunk ranges, as the original PDTP defined them.
//!
//! `num_chunks = ceil(size / chunk_size)`; the last chunk is short. A *request* covers every
//! chunk it touches (the taker wants those bytes); a *provide* covers only the chunks it
//! covers completely (a partial chunk cannot be served).

use core::ops::Range;

use serde::{Deserialize, Serialize};

use crate::ids::ChunkIndex;

/// A byte range `[start, end)`; `end: None` is open-ended ("to the end, including bytes
/// that do not exist yet" for live content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// One past the last byte, or `None` for open-ended.
    pub end: Option<u64>,
}

/// How a byte range maps onto chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cover {
    /// Every chunk the range touches (requests).
    Touched,
    /// Only chunks entirely inside the range (provides).
    Whole,
}

/// A content's geometry: total size and chunk size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Total bytes (for live content: bytes published so far).
    pub size: u64,
    /// Bytes per chunk (the last one may be shorter).
    pub chunk_size: u32,
}

impl ByteRange {
    /// The whole content, whatever its size.
    pub const ALL: Self = Self { start: 0, end: None };

    /// A closed range `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end: Some(end) }
    }

    /// From `start` to the end (open-ended).
    pub const fn from(start: u64) -> Self {
        Self { start, end: None }
    }
}

impl Geometry {
    /// Builds a geometry; `chunk_size` must be non-zero (callers validate at their boundary).
    pub const fn new(size: u64, chunk_size: u32) -> Self {
        Self { size, chunk_size }
    }

    /// `ceil(size / chunk_size)`; zero for an empty file.
    pub fn num_chunks(&self) -> u32 {
        if self.chunk_size == 0 {
            return 0;
        }
        let n = self.size.div_ceil(u64::from(self.chunk_size));
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The byte range of chunk `index` (the last chunk is short); empty past the end.
    pub fn chunk_bytes(&self, index: ChunkIndex) -> Range<u64> {
        let cs = u64::from(self.chunk_size);
        let start = (u64::from(index) * cs).min(self.size);
        let end = (start + cs).min(self.size);
        start..end
    }

    /// Length of chunk `index` in bytes (0 past the end).
    pub fn chunk_len(&self, index: ChunkIndex) -> u32 {
        let r = self.chunk_bytes(index);
        // A chunk is at most chunk_size bytes, which is a u32.
        (r.end - r.start) as u32
    }

    /// The chunks a byte range maps to, clamped to the content's current size.
    ///
    /// Open-ended ranges end at the current last chunk; the tracker extends them for live
    /// content as chunks appear.
    pub fn chunks_of(&self, range: ByteRange, cover: Cover) -> Range<ChunkIndex> {
        let n = self.num_chunks();
        if self.chunk_size == 0 {
            return 0..0;
        }
        let cs = u64::from(self.chunk_size);
        let end_byte = range.end.unwrap_or(self.size).min(self.size);
        if range.start >= end_byte {
            return 0..0;
        }
        let (first, last_excl) = match cover {
            Cover::Touched => (range.start / cs, end_byte.div_ceil(cs)),
            Cover::Whole => {
                let first = range.start.div_ceil(cs);
                // The final short chunk counts as whole when the range reaches the file end.
                let last = if end_byte == self.size { u64::from(n) } else { end_byte / cs };
                (first, last)
            }
        };
        let first = u32::try_from(first).unwrap_or(u32::MAX).min(n);
        let last = u32::try_from(last_excl).unwrap_or(u32::MAX).min(n);
        if first >= last { 0..0 } else { first..last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_chunk_is_short() {
        let g = Geometry::new(10_001, 5_000);
        assert_eq!(g.num_chunks(), 3);
        assert_eq!(g.chunk_len(2), 1);
        assert_eq!(g.chunk_bytes(2), 10_000..10_001);
        assert_eq!(g.chunk_len(3), 0);
    }

    #[test]
    fn provide_excludes_partial_chunks_but_request_includes_them() {
        let g = Geometry::new(20_000, 5_000);
        let r = ByteRange::new(2_500, 12_500);
        assert_eq!(g.chunks_of(r, Cover::Touched), 0..3);
        assert_eq!(g.chunks_of(r, Cover::Whole), 1..2);
    }

    #[test]
    fn whole_cover_counts_short_final_chunk_at_file_end() {
        let g = Geometry::new(10_001, 5_000);
        assert_eq!(g.chunks_of(ByteRange::from(5_000), Cover::Whole), 1..3);
        assert_eq!(g.chunks_of(ByteRange::ALL, Cover::Whole), 0..3);
    }

    #[test]
    fn ranges_past_the_end_are_clamped() {
        let g = Geometry::new(10_000, 5_000);
        assert_eq!(g.chunks_of(ByteRange::new(9_000, 1_000_000), Cover::Touched), 1..2);
        assert_eq!(g.chunks_of(ByteRange::from(20_000), Cover::Touched), 0..0);
    }
}
