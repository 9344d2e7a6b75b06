//! What physics allows a live stream: the highest rate a swarm can carry and the shortest lag
//! a chunk can reach every viewer in, from capacities alone (docs/simulator.md, "Live
//! feasibility"); and what the fluid model predicts for an on-demand swarm in steady state.
//! Pure arithmetic, shared by `sim check` and whatever reads measured capacities.

/// The highest stream rate every viewer can receive, bit/s:
/// `r_max = min(u_s, (u_s + Σu_i) / N)` (the origin must send each bit once, and the swarm's
/// whole upload must carry `N` copies).
pub fn r_max_bps(origin_up_bps: f64, peer_ups_bps: f64, n: u64) -> f64 {
    origin_up_bps.min((origin_up_bps + peer_ups_bps) / n.max(1) as f64)
}

/// The share of the lag floor a viewer's buffer should cover for the live targets to apply
/// (continuity ≥ 0.99 is promised where the buffer is at least this × the floor).
pub const BUFFER_MARGIN: f64 = 1.5;

/// Stream rates above this × r_max are past what the live targets promise.
pub const RATE_MARGIN: f64 = 0.9;

/// How a stream's rate stands against r_max ([`LiveBounds::feasibility`]); ordered from
/// best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feasibility {
    /// At most [`RATE_MARGIN`] × r_max.
    Fits,
    /// Above the margin the live targets hold to, within r_max.
    PastMargin,
    /// Above r_max: no schedule carries it to every viewer, at any chunk size.
    Infeasible,
}

/// A live stream's bounds on a swarm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveBounds {
    /// The highest rate the swarm can carry, bit/s.
    pub r_max_bps: f64,
    /// The stream's rate ÷ r_max.
    pub load: f64,
    /// One chunk's bits ÷ the mean uplink of all nodes (the origin's included), s: the time
    /// one node takes to pass a whole chunk to one other at its full uplink.
    pub copy_s: f64,
    /// `⌈log₂(N + 1)⌉`: the fewest store-and-forward hops that reach `N` viewers when every
    /// holder passes the chunk on to one more node per copy time.
    pub depth: u32,
    /// `depth × copy_s`: no viewer can hold a chunk sooner than this after it was made, in
    /// the model; a buffer shorter than it misses chunks whatever the schedule.
    pub floor_s: f64,
    /// Whether the slowest download is below the stream's rate (no schedule serves it).
    pub download_short: bool,
}

/// A swarm's capacities and a stream's geometry, as [`LiveBounds::of`] takes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveSwarm {
    /// The origin's upload (all seeds), bit/s.
    pub origin_up_bps: f64,
    /// Σ of the viewers' uplinks, bit/s.
    pub peer_ups_bps: f64,
    /// The slowest viewer's download, bit/s.
    pub d_min_bps: f64,
    /// Viewers.
    pub n: u64,
    /// The stream's rate, bit/s.
    pub bitrate_bps: f64,
    /// Bytes per chunk.
    pub chunk_bytes: u64,
}

impl LiveBounds {
    /// The bounds of a stream on a swarm.
    pub fn of(s: &LiveSwarm) -> Self {
        let r_max_bps = r_max_bps(s.origin_up_bps, s.peer_ups_bps, s.n);
        let mean_up = (s.origin_up_bps + s.peer_ups_bps) / (s.n + 1) as f64;
        let copy_s = s.chunk_bytes as f64 * 8.0 / mean_up;
        // ⌈log₂(N + 1)⌉ without floating point: the bits needed to count to N.
        let depth = u64::BITS - s.n.leading_zeros();
        Self {
            r_max_bps,
            load: s.bitrate_bps / r_max_bps,
            copy_s,
            depth,
            floor_s: f64::from(depth) * copy_s,
            download_short: s.d_min_bps < s.bitrate_bps,
        }
    }

    /// Whether the stream is within the live targets' reach with a `buffer_s` buffer: at most
    /// [`RATE_MARGIN`] × r_max, every download fast enough, and a buffer of at least
    /// [`BUFFER_MARGIN`] × the floor.
    pub fn within_targets(&self, buffer_s: f64) -> bool {
        self.load <= RATE_MARGIN && !self.download_short && buffer_s >= BUFFER_MARGIN * self.floor_s
    }

    /// The largest chunk (bytes) whose floor a `buffer_s` buffer covers [`BUFFER_MARGIN`]
    /// times over; the floor grows with the chunk.
    pub fn chunk_that_fits(&self, chunk_bytes: u64, buffer_s: f64) -> u64 {
        if self.floor_s <= 0.0 {
            return chunk_bytes;
        }
        (chunk_bytes as f64 * buffer_s / (BUFFER_MARGIN * self.floor_s)).floor() as u64
    }

    /// Where the stream's rate stands against r_max.
    pub fn feasibility(&self) -> Feasibility {
        if self.load > 1.0 {
            Feasibility::Infeasible
        } else if self.load > RATE_MARGIN {
            Feasibility::PastMargin
        } else {
            Feasibility::Fits
        }
    }

    /// The shortest buffer, s, that covers [`BUFFER_MARGIN`] × the floor.
    pub fn buffer_that_fits(&self) -> f64 {
        BUFFER_MARGIN * self.floor_s
    }
}

/// An on-demand swarm in Qiu and Srikant's steady state: viewers arriving as a Poisson
/// process, each downloading and then serving for a while before it leaves, beside an origin
/// that stays (D. Qiu and R. Srikant, "Modeling and performance analysis of BitTorrent-like
/// peer-to-peer networks", SIGCOMM 2004).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SteadySwarm {
    /// Arrivals per second, λ.
    pub arrivals_per_s: f64,
    /// The content, bits.
    pub file_bits: f64,
    /// A viewer's mean uplink (over arrivals), bit/s.
    pub mean_up_bps: f64,
    /// The origin's uplink, bit/s.
    pub origin_up_bps: f64,
    /// How long a viewer serves after completing, on average, s (1/γ).
    pub mean_seed_s: f64,
    /// A viewer's mean download time at its own downlink's rate (Σ share × F ÷ d), s: no
    /// download can be faster.
    pub link_download_s: f64,
}

impl SteadySwarm {
    /// The fluid model's mean download time, s, with every downloader's upload put to use
    /// (η = 1; rarest-first keeps a downloader useful to others almost always).
    ///
    /// In steady state completions match arrivals, so the swarm serves `λF` bits a second
    /// and holds `y = λ/γ` seeds. Where upload is the limit, `λF = u(x + y) + u_o` for `x`
    /// downloaders, and by Little's law the mean download time is
    /// `x/λ = F/u − 1/γ − u_o/(λu)`; where downlinks are, it is their own time. The model
    /// ignores chunk and control latencies and the warm-up and drain of a finite run.
    pub fn fluid_download_s(&self) -> f64 {
        let upload_bound = self.file_bits / self.mean_up_bps
            - self.mean_seed_s
            - self.origin_up_bps / (self.arrivals_per_s * self.mean_up_bps);
        upload_bound.max(self.link_download_s)
    }

    /// The share of the swarm's upload a mean download time of `download_s` keeps busy:
    /// `λF ÷ (u(x + y) + u_o)` with `x = λ·download_s` downloaders (Little's law) and
    /// `y = λ/γ` seeds. The fluid model's upload-bound state is 1.
    pub fn upload_use(&self, download_s: f64) -> f64 {
        let held = self.arrivals_per_s * (download_s + self.mean_seed_s);
        self.arrivals_per_s * self.file_bits / (self.mean_up_bps * held + self.origin_up_bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fluid_steady_state_is_bound_by_upload_or_by_downlinks() {
        // 80 Mbit at an 8 Mbit/s mean uplink is F/u = 10 s; one arrival a second, 2 s of
        // seeding and a 16 Mbit/s origin (u_o/(λu) = 2 s) leave 10 − 2 − 2 = 6 s.
        let mut s = SteadySwarm {
            arrivals_per_s: 1.0,
            file_bits: 80e6,
            mean_up_bps: 8e6,
            origin_up_bps: 16e6,
            mean_seed_s: 2.0,
            link_download_s: 4.0,
        };
        assert!((s.fluid_download_s() - 6.0).abs() < 1e-9);
        // Seeds that stay long enough carry every arrival at the downlinks' rate.
        s.mean_seed_s = 20.0;
        assert!((s.fluid_download_s() - 4.0).abs() < 1e-9);
        // Twice the arrivals halve what the origin adds per arrival: 10 − 2 − 1 = 7 s.
        s.mean_seed_s = 2.0;
        s.arrivals_per_s = 2.0;
        assert!((s.fluid_download_s() - 7.0).abs() < 1e-9);
        // Upload-bound, the model keeps all upload busy; a slower swarm holds more
        // downloaders for the same demand.
        assert!((s.upload_use(7.0) - 1.0).abs() < 1e-9);
        assert!(s.upload_use(9.0) < 1.0);
    }

    fn swarm(n: u64) -> LiveSwarm {
        // live.yml: a 100 Mbit/s origin, 500 × 2, 350 × 5, 150 × 20 Mbit/s uplinks.
        LiveSwarm {
            origin_up_bps: 100e6,
            peer_ups_bps: 5_750e6 * n as f64 / 1000.0,
            d_min_bps: 20e6,
            n,
            bitrate_bps: 5.25e6,
            chunk_bytes: 125_000,
        }
    }

    #[test]
    fn depth_is_the_hops_that_reach_every_viewer_by_doubling() {
        let depth = |n| LiveBounds::of(&swarm(n)).depth;
        // 1 viewer: one hop; 3 viewers: 2 (1 → 2 → 4 holders, the origin among them).
        assert_eq!([depth(1), depth(2), depth(3), depth(4), depth(7), depth(8)], [1, 2, 2, 3, 3, 4]);
        assert_eq!(depth(1000), 10);
    }

    #[test]
    fn live_yml_has_a_floor_of_ten_copies_of_its_chunk_at_the_mean_uplink() {
        let b = LiveBounds::of(&swarm(1000));
        let mean_up = (100e6 + 5_750e6) / 1001.0;
        assert!((b.r_max_bps - 5.85e6).abs() < 1.0, "{}", b.r_max_bps);
        assert!((b.copy_s - 1e6 / mean_up).abs() < 1e-12);
        assert!((b.floor_s - 10.0 * 1e6 / mean_up).abs() < 1e-12, "{}", b.floor_s);
        assert!((b.load - 5.25 / 5.85).abs() < 1e-9);
        // A 4 s buffer covers 1.5 × the 1.71 s floor; a 2 s buffer does not.
        assert!(b.within_targets(4.0) && !b.within_targets(2.0));
        assert!((b.buffer_that_fits() - 1.5 * b.floor_s).abs() < 1e-12);
        // Half the chunk halves the floor: a 2 s buffer fits chunks of 2 / 1.5 / floor × 125 kB.
        let fit = b.chunk_that_fits(125_000, 2.0);
        assert_eq!(fit, (125_000.0 * 2.0 / (1.5 * b.floor_s)).floor() as u64);
        let smaller = LiveBounds::of(&LiveSwarm { chunk_bytes: fit, ..swarm(1000) });
        assert!(smaller.within_targets(2.0));
    }

    #[test]
    fn a_stream_past_the_margin_or_a_download_below_its_rate_is_out_of_reach() {
        let fast = LiveBounds::of(&LiveSwarm { bitrate_bps: 5.5e6, ..swarm(1000) });
        assert!(fast.load > RATE_MARGIN && !fast.within_targets(30.0));
        let slow = LiveBounds::of(&LiveSwarm { d_min_bps: 4e6, ..swarm(1000) });
        assert!(slow.download_short && !slow.within_targets(30.0));
    }
}
