//! The only two places the simulator reads the host: wall-clock time and peak memory.
//! Neither feeds back into a run; both appear only in the wall-clock report fields.

/// Measures wall-clock seconds for `wall_s` and `events_per_s`.
#[derive(Debug)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts timing.
    // The reporting layer is the one place allowed to read the wall clock: it measures the
    // simulator's own speed and never influences simulated time.
    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    /// Seconds since `start`.
    pub fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Peak resident set size of this process in bytes (`VmHWM` in `/proc/self/status`), or
/// `None` where that file does not exist.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
