//! Value checks after parsing; each error names the field (`peers[1].upload: must be > 0`).

use super::{Churn, Named, PolicySpec, Scenario};
use crate::units::{BitRate, Bytes};

impl Scenario {
    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.time_limit.0.as_nanos() == 0 {
            return Err("time_limit: must be > 0".into());
        }
        let c = &self.content;
        match (&c.live, c.size) {
            (Some(_), Some(_)) => {
                return Err(
                    "content.size: not allowed for a live stream (its size is bitrate × duration)".into()
                );
            }
            (None, None) => return Err("content.size: missing (or give content.live for a stream)".into()),
            (None, Some(s)) if s.0 == 0 => return Err("content.size: must be > 0".into()),
            _ => {}
        }
        if let Some(l) = &c.live {
            positive(l.bitrate.0, "content.live.bitrate")?;
            positive(l.duration.0.as_nanos(), "content.live.duration")?;
            positive(l.buffer.0.as_nanos(), "content.live.buffer")?;
        }
        let content = self.content_named();
        check_chunk(c.chunk_size, self.file_bytes(), "content.chunk_size", &content)?;
        check_chunk_count(c.chunk_size, self.file_bytes(), "content.chunk_size")?;
        if self.seeds.count == 0 {
            return Err("seeds.count: must be > 0".into());
        }
        positive(self.seeds.upload.0, "seeds.upload")?;
        positive(self.seeds.download.0, "seeds.download")?;
        if self.peers.is_empty() {
            return Err("peers: at least one peer class is needed".into());
        }
        for (i, p) in self.peers.iter().enumerate() {
            if p.count == 0 {
                return Err(format!("peers[{i}].count: must be > 0"));
            }
            positive(p.upload.0, &format!("peers[{i}].upload"))?;
            positive(p.download.0, &format!("peers[{i}].download"))?;
        }
        if self.peer_count() > MAX_VIEWERS {
            return Err(format!(
                "peers: {} viewers in all; the simulator takes at most {MAX_VIEWERS} (each costs \
                 about 170 kB of memory)",
                self.peer_count()
            ));
        }
        if u64::from(self.seeds.count) > self.peer_count() {
            return Err(format!(
                "more seeds than peers (seeds.count = {}, peers = {})",
                self.seeds.count,
                self.peer_count()
            ));
        }
        match self.arrivals {
            super::Arrivals::At(ref times) if times.len() as u64 != self.peer_count() => {
                return Err(format!(
                    "arrivals.at: {} times for {} viewers (one per viewer, in the order of peers:)",
                    times.len(),
                    self.peer_count()
                ));
            }
            super::Arrivals::Poisson { rate } if !(rate.is_finite() && rate > 0.0) => {
                return Err("arrivals.poisson.rate: must be > 0 (arrivals per second)".into());
            }
            super::Arrivals::Uniform { window } if window.0.as_nanos() == 0 => {
                return Err("arrivals.uniform.window: must be > 0 (all_at_once is the zero window)".into());
            }
            _ => {}
        }
        if let Some(ch) = &self.churn {
            check_churn(ch)?;
        }
        check_policy(&self.policy, "policy")?;
        positive(self.tracker.bandwidth.0, "tracker.bandwidth")?;
        probability(self.faults.failure, "faults.failure")?;
        probability(self.faults.corruption, "faults.corruption")?;
        if self.faults.failure >= 1.0 {
            return Err("faults.failure: must be < 1 (no transfer could ever succeed)".into());
        }
        if self.faults.corruption >= 1.0 {
            return Err("faults.corruption: must be < 1 (no chunk could ever be verified)".into());
        }
        self.check_copy_time(c.chunk_size, "content.chunk_size")?;
        if let Some(sw) = &self.sweep {
            // A repeated value would run the same cells twice and count them twice in means.
            once(&sw.chunk_sizes, "sweep.chunk_sizes")?;
            once(&sw.seeds, "sweep.seeds")?;
            once(&sw.tracker_processing, "sweep.tracker_processing")?;
            unique_names(&sw.variants, "sweep.variants")?;
            unique_names(&sw.policies, "sweep.policies")?;
            if sw.variants.is_empty() {
                self.check_sweep_cells(sw)?;
            }
            for (i, v) in sw.variants.iter().enumerate() {
                let at = format!("sweep.variants[{i}] ('{}')", v.name);
                let base = v.apply_scenario(self).map_err(|e| format!("{at}: {e}"))?;
                base.check_sweep_cells(sw).map_err(|e| format!("{at}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The sweep's chunk sizes and policies against this scenario (the base, or a variant).
    fn check_sweep_cells(&self, sw: &super::Sweep) -> Result<(), String> {
        let content = self.content_named();
        for (i, &size) in sw.chunk_sizes.iter().enumerate() {
            let field = format!("sweep.chunk_sizes[{i}]");
            check_chunk(size, self.file_bytes(), &field, &content)?;
            check_chunk_count(size, self.file_bytes(), &field)?;
            self.check_copy_time(size, &field)?;
        }
        for (i, p) in sw.policies.iter().enumerate() {
            check_named(p, &self.policy, &format!("sweep.policies[{i}]"))?;
        }
        Ok(())
    }

    /// The content as chunk-size errors name it: its size, or a stream's bitrate × duration.
    fn content_named(&self) -> String {
        match &self.content.live {
            Some(l) => format!(
                "the stream (content.live.bitrate × duration = {} × {} = {})",
                l.bitrate,
                l.duration,
                Bytes(self.file_bytes())
            ),
            None => format!("content.size ({})", Bytes(self.file_bytes())),
        }
    }

    /// A chunk must be able to reach every viewer within a transfer's time limit, or every
    /// copy to it fails and is ordered again for ever: over the slowest viewer download, and
    /// from at least one giver (the fastest upload). A slow uplink alone is not refused:
    /// copies from it fail, but others can give.
    fn check_copy_time(&self, chunk: Bytes, field: &str) -> Result<(), String> {
        let limit = crate::adapters::TRANSFER_TIMEOUT.as_secs_f64();
        let secs = |rate: u64| chunk.0 as f64 * 8.0 / rate as f64;
        let slowest_down = self.peers.iter().map(|p| p.download.0).min();
        let fastest_up = self.peers.iter().map(|p| p.upload.0).chain([self.seeds.upload.0]).max();
        let too_slow = [(slowest_down, "the slowest viewer download"), (fastest_up, "the fastest upload")]
            .into_iter()
            .find_map(|(rate, what)| rate.filter(|&r| r > 0 && secs(r) > limit).map(|r| (r, what)));
        if let Some((rate, what)) = too_slow {
            return Err(format!(
                "{field}: a {chunk} chunk takes {:.0} s over {what} ({}), longer than a transfer may \
                 run ({limit} s); use smaller chunks",
                secs(rate),
                BitRate(rate)
            ));
        }
        Ok(())
    }
}

/// Refuses a sweep axis that lists a value twice, naming the second.
fn once<T: PartialEq + std::fmt::Display>(axis: &[T], field: &str) -> Result<(), String> {
    match (1..axis.len()).find(|&i| axis[..i].contains(&axis[i])) {
        Some(i) => Err(format!("{field}[{i}]: {} is listed twice", axis[i])),
        None => Ok(()),
    }
}

fn positive(v: u64, field: &str) -> Result<(), String> {
    if v == 0 { Err(format!("{field}: must be > 0")) } else { Ok(()) }
}

fn probability(p: f64, field: &str) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) { Ok(()) } else { Err(format!("{field}: must be a probability in [0, 1]")) }
}

/// `content` names the content for the error (see `Scenario::content_named`).
fn check_chunk(size: Bytes, file: u64, field: &str, content: &str) -> Result<(), String> {
    positive(size.0, field)?;
    if size.0 > u64::from(u32::MAX) {
        return Err(format!("{field}: {size} is over the protocol's chunk limit of {} bytes", u32::MAX));
    }
    if size.0 > file {
        return Err(format!("{field} ({size}) is larger than {content}"));
    }
    Ok(())
}

/// Viewers a scenario may have: far beyond what fits this machine's memory (the 10 000-viewer
/// run peaks at 1.7 GB), so a typo of a few zeros is named instead of aborting the run.
const MAX_VIEWERS: u64 = 1_000_000;

/// Chunks a content may have: a manifest carries a 32-byte hash per chunk and must fit the
/// protocol's 16 MiB control message (docs/protocol.md), which holds about 524 000.
const MAX_CHUNKS: u64 = 500_000;

fn check_chunk_count(size: Bytes, file: u64, field: &str) -> Result<(), String> {
    let chunks = file.div_ceil(size.0.max(1));
    if chunks > MAX_CHUNKS {
        return Err(format!(
            "{field}: {size} makes {chunks} chunks of {}; a manifest holds at most {MAX_CHUNKS} (use larger chunks)",
            Bytes(file)
        ));
    }
    Ok(())
}

fn check_churn(ch: &Churn) -> Result<(), String> {
    probability(ch.leave, "churn.leave")?;
    probability(ch.rejoin, "churn.rejoin")?;
    positive(ch.stay.0.as_nanos(), "churn.stay")?;
    positive(ch.away.0.as_nanos(), "churn.away")
}

fn check_policy(p: &PolicySpec, at: &str) -> Result<(), String> {
    p.validate().map_err(|e| format!("{at}.{e}"))
}

fn check_named(p: &Named, base: &PolicySpec, at: &str) -> Result<(), String> {
    let merged = p.apply_policy(base).map_err(|e| format!("{at}: {e}"))?;
    check_policy(&merged, at)
}

/// Names must be non-empty and unique: they label cells in reports.
fn unique_names(list: &[Named], field: &str) -> Result<(), String> {
    for (i, n) in list.iter().enumerate() {
        if n.name.trim().is_empty() {
            return Err(format!("{field}[{i}].name: must not be empty"));
        }
        if list[..i].iter().any(|m| m.name == n.name) {
            return Err(format!("{field}[{i}].name: '{}' is used twice", n.name));
        }
    }
    Ok(())
}
