//! Live playback accounting: deadlines, continuity, stalls and lag behind the live edge.
//!
//! Chunk `i` of a stream is *produced* (fully available at the seed) at
//! `p_i = (i + 1) · τ`, with `τ = chunk_size · 8 / bitrate`. A viewer plays from the first
//! chunk `s` it gets in order, starting at `play0 = max(ready_s, p_s + buffer)` (it keeps
//! `buffer` of slack behind the live edge when it can), and then one chunk per `τ`:
//! chunk `j`'s deadline is `d_j = play0 + (j − s) · τ`. A chunk is *on time* if it became
//! deliverable in order by its deadline. The model does not rebuffer: deadlines do not move
//! after a late chunk, so a late chunk costs continuity instead of shifting later ones.

use pdtp_core::{ChunkIndex, Span, Time};

use super::chunk_f;

/// The stream's timing, shared by every viewer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamClock {
    /// τ: nanoseconds of playback per (full) chunk.
    pub chunk_ns: f64,
    /// Playback buffer behind the live edge.
    pub buffer: Span,
    /// Index of the stream's last chunk.
    pub last_chunk: ChunkIndex,
}

impl StreamClock {
    /// The clock of `s`'s live stream (`None` for on-demand content).
    pub fn of(s: &crate::scenario::Scenario) -> Option<Self> {
        s.content.live.map(|l| {
            let chunk = s.content.chunk_size.0 as f64;
            let geometry_chunks = s.file_bytes().div_ceil(s.content.chunk_size.0.max(1));
            Self {
                chunk_ns: chunk * 8.0 / l.bitrate.0 as f64 * 1e9,
                buffer: l.buffer.0,
                last_chunk: geometry_chunks.saturating_sub(1) as u32,
            }
        })
    }

    /// When chunk `i` is fully produced.
    pub fn produced(&self, i: ChunkIndex) -> Time {
        Time::from_nanos(((chunk_f(i) + 1.0) * self.chunk_ns).round() as u64)
    }

    /// The newest fully produced chunk at `t` (the live edge), if any.
    pub fn edge(&self, t: Time) -> Option<ChunkIndex> {
        let n = (t.as_nanos() as f64 / self.chunk_ns).floor();
        if n < 1.0 { None } else { Some(((n - 1.0) as u64).min(u64::from(self.last_chunk)) as ChunkIndex) }
    }
}

/// One viewer's playback as chunks arrive in order.
#[derive(Clone, Debug, Default)]
pub(super) struct PlayState {
    arrival: Option<Time>,
    /// The latest arrival before playback started: startup counts from here, so a viewer
    /// that leaves before its first chunk and returns later did not wait while away.
    joined: Option<Time>,
    /// When the viewer last went offline, while it is away.
    left: Option<Time>,
    /// Closed away periods `[left, back)`: deadlines inside them are not due.
    away: Vec<(Time, Time)>,
    start: Option<(ChunkIndex, Time)>,
    on_time: Vec<bool>,
    lag_ns: f64,
    lag_n: u32,
}

/// What one viewer's playback came to.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PlaySummary {
    pub startup_s: Option<f64>,
    pub continuity: f64,
    pub due: u64,
    pub on_time: u64,
    pub stalls: u32,
    pub mean_lag_s: Option<f64>,
}

impl PlayState {
    /// The viewer arrived (the first arrival anchors the never-played charge; the latest one
    /// before playback starts anchors startup).
    pub(super) fn arrive(&mut self, arrival: Time) {
        self.arrival.get_or_insert(arrival);
        if self.start.is_none() {
            self.joined = Some(arrival);
        }
        if let Some(left) = self.left.take() {
            self.away.push((left, arrival));
        }
    }

    /// The viewer went offline (it may come back).
    pub(super) fn leave(&mut self, now: Time) {
        self.left = Some(now);
    }

    /// Chunk `chunk` became deliverable in order at `now`.
    pub(super) fn in_order(&mut self, clock: &StreamClock, arrival: Time, chunk: ChunkIndex, now: Time) {
        self.arrival.get_or_insert(arrival);
        let (s, play0) = *self.start.get_or_insert_with(|| {
            let play0 = now.max(clock.produced(chunk) + clock.buffer);
            (chunk, play0)
        });
        if chunk < s {
            return;
        }
        let j = (chunk - s) as usize;
        if self.on_time.len() <= j {
            self.on_time.resize(j + 1, false);
        }
        let deadline = play0 + Span::from_nanos((chunk_f(chunk - s) * clock.chunk_ns).round() as u64);
        self.on_time[j] = now <= deadline;
        self.lag_ns += (now - clock.produced(chunk)).as_nanos() as f64;
        self.lag_n += 1;
    }

    /// The summary at the end of the viewer's presence (`end`).
    pub(super) fn summary(&self, clock: &StreamClock, end: Time) -> Option<PlaySummary> {
        let arrival = self.arrival?;
        // A viewer that never played anything is charged from the edge it arrived at.
        let (s, play0) = self.start.unwrap_or_else(|| {
            let s = clock.edge(arrival).unwrap_or(0);
            (s, arrival.max(clock.produced(s) + clock.buffer))
        });
        let span = chunk_f(clock.last_chunk - s.min(clock.last_chunk)) + 1.0;
        let due = if end < play0 {
            0.0
        } else {
            (((end - play0).as_nanos() as f64 / clock.chunk_ns).floor() + 1.0).min(span)
        } as u64;
        let mut on_time = 0u64;
        let mut stalls = 0u32;
        let mut prev_ok = true;
        let mut away = 0u64;
        for j in 0..due as usize {
            let deadline = play0 + Span::from_nanos((j as f64 * clock.chunk_ns).round() as u64);
            if self.away.iter().any(|&(from, to)| from <= deadline && deadline < to) {
                // Not there when it was due: not counted (and does not break a run).
                away += 1;
                continue;
            }
            let ok = self.on_time.get(j).copied().unwrap_or(false);
            if ok {
                on_time += 1;
            } else if prev_ok {
                stalls += 1;
            }
            prev_ok = ok;
        }
        let due = due - away;
        Some(PlaySummary {
            startup_s: self.start.map(|_| (play0 - self.joined.unwrap_or(arrival)).as_secs_f64()),
            continuity: if due == 0 { 1.0 } else { on_time as f64 / due as f64 },
            due,
            on_time,
            stalls,
            mean_lag_s: (self.lag_n > 0).then(|| self.lag_ns / f64::from(self.lag_n) / 1e9),
        })
    }
}
