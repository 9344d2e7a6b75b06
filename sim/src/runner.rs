//! One call from a scenario to a finished, reported run.

use pdtp_core::Time;

use crate::engine::Engine;
use crate::node::NodeFactory;
use crate::report::{RunResult, Stopwatch};
use crate::scenario::Scenario;

/// Runs `scenario` with nodes from `factory`, labelling the report with `policy`.
///
/// `progress(sim_now, events, viewers_done)` is called every 65 536 events. The run itself
/// is a pure function of the scenario (and its seed); only `wall_s`, `events_per_s` and
/// `peak_rss_bytes` in the report come from the host.
pub fn run(
    scenario: &Scenario,
    policy: &str,
    factory: &mut dyn NodeFactory,
    progress: &mut dyn FnMut(Time, u64, u64),
) -> RunResult {
    let watch = Stopwatch::start();
    let out = Engine::new(scenario, factory).run(progress);
    RunResult::new(scenario, policy, out, watch.secs())
}
