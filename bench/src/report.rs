//! Output: plain tables for people, one JSON document for scripts, and a
//! check of the figures against the goals stated in the issue.

use serde::Serialize;

use crate::checks::ChecksReport;
use crate::fanout::FanoutReport;
use crate::load::LoadReport;
use crate::sys::Rss;

/// Memory of one server process before and after the run.
#[derive(Debug, Clone, Serialize)]
pub struct RssReport {
    /// Target name.
    pub target: String,
    /// PID read.
    pub pid: u32,
    /// Before any scenario ran.
    pub idle: Option<Rss>,
    /// After the last scenario.
    pub after: Option<Rss>,
}

/// Description of a target as probed.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// Target name.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Server version, when reported.
    pub version: Option<String>,
    /// etcd gateway prefix (`/v3`, `/v3beta`); empty for the registry.
    pub api: String,
    /// etcd: GETs were serializable rather than linearizable reads.
    pub serializable_reads: bool,
}

/// One goal from the issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// What is required.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
}

/// Everything one run produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    /// Targets driven.
    pub targets: Vec<TargetInfo>,
    /// Closed-loop scenarios.
    pub load: Vec<LoadReport>,
    /// Fan-out scenarios.
    pub fanout: Vec<FanoutReport>,
    /// Health-check scenarios.
    pub checks: Vec<ChecksReport>,
    /// Server memory.
    pub rss: Vec<RssReport>,
    /// Goals from the issue that this run's data can decide.
    pub goals: Vec<Goal>,
}

impl Results {
    /// Evaluate the goals on whatever this run measured.
    pub fn check_goals(&mut self) {
        let load = |scenario: &str, target: &str| {
            self.load
                .iter()
                .find(|r| r.scenario == scenario && r.target == target)
        };
        let mut goals = Vec::new();
        if let Some(r) = load("put1", "registry") {
            goals.push(Goal {
                goal: "put1 registry >= 2000 ops/s".into(),
                measured: format!("{:.0} ops/s", r.ops_per_sec),
                met: r.ops_per_sec >= 2000.0 && r.errors == 0,
            });
        }
        for (scenario, factor) in [("put64", 3.0), ("get64", 4.0)] {
            if let (Some(reg), Some(etcd)) = (load(scenario, "registry"), load(scenario, "etcd")) {
                let ratio = reg.ops_per_sec / etcd.ops_per_sec;
                goals.push(Goal {
                    goal: format!("{scenario} registry >= {factor}x etcd"),
                    measured: format!("{ratio:.2}x"),
                    met: ratio >= factor && reg.errors == 0,
                });
            }
        }
        if let Some(f) = self.fanout.iter().find(|f| f.target == "registry") {
            goals.push(Goal {
                goal: format!(
                    "fanout: all {} watchers released within 100 ms of the PUT being sent",
                    f.watchers
                ),
                measured: format!(
                    "{}/{} changed, last after {:.1} ms",
                    f.changed, f.watchers, f.last_from_put_sent_ms
                ),
                met: f.changed == f.watchers && f.last_from_put_sent_ms <= 100.0,
            });
        }
        if let Some(idle) = self
            .rss
            .iter()
            .find(|r| r.target == "registry")
            .and_then(|r| r.idle)
        {
            goals.push(Goal {
                goal: "registry idle RSS <= 30 MB".into(),
                measured: format!("{:.1} MB", idle.rss_kib as f64 / 1000.0),
                met: idle.rss_kib <= 30_000,
            });
        }
        for c in &self.checks {
            // Cheap because the checks never ran is not a result.
            let not_running = if c.checks_running() {
                String::new()
            } else {
                format!(
                    "; checks not running: target saw {:.1} req/s, expected ~{:.0}",
                    c.target_requests_per_sec, c.expected_requests_per_sec
                )
            };
            goals.push(Goal {
                goal: format!(
                    "checks: {} HTTP checks at {}s use < 25% of one core",
                    c.checks_registered, c.interval_s
                ),
                measured: format!("{:.1}%{not_running}", c.node_cpu_percent),
                met: c.node_cpu_percent < 25.0 && c.checks_running(),
            });
            goals.push(Goal {
                goal: format!(
                    "checks: RSS < 50 MB with {} HTTP checks",
                    c.checks_registered
                ),
                measured: format!("{:.1} MB{not_running}", c.rss_after.rss_kib as f64 / 1000.0),
                met: c.rss_after.rss_kib < 50_000 && c.checks_running(),
            });
        }
        self.goals = goals;
    }

    /// The human-readable report.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for t in &self.targets {
            out += &format!(
                "# {} at {}{}{}\n",
                t.name,
                t.url,
                t.version
                    .as_ref()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default(),
                match (t.api.is_empty(), t.serializable_reads) {
                    (true, _) => String::new(),
                    (false, false) => format!(" gateway {}, linearizable reads", t.api),
                    (false, true) => format!(" gateway {}, serializable reads", t.api),
                }
            );
        }
        if !self.load.is_empty() {
            out += &format!(
                "\n{:<9} {:<9} {:>7} {:>10} {:>8} {:>8} {:>9} {:>8} {:>7}\n",
                "scenario",
                "target",
                "clients",
                "ops/s",
                "p50(ms)",
                "p99(ms)",
                "p999(ms)",
                "max(ms)",
                "errors"
            );
            for r in &self.load {
                out += &format!(
                    "{:<9} {:<9} {:>7} {:>10.1} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7}\n",
                    r.scenario,
                    r.target,
                    r.clients,
                    r.ops_per_sec,
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.latency.p999_ms,
                    r.latency.max_ms,
                    r.errors
                );
            }
            for r in self.load.iter().filter(|r| r.errors > 0) {
                if let Some(e) = &r.first_error {
                    out += &format!("  {} {} first error: {e}\n", r.scenario, r.target);
                }
            }
        }
        if !self.fanout.is_empty() {
            out += &format!(
                "\n{:<9} {:<9} {:>8} {:>6} {:>8} {:>7} {:>7} {:>8} {:>11} {:>11} {:>8} {:>8}\n",
                "scenario",
                "target",
                "watchers",
                "ready",
                "released",
                "changed",
                "missed",
                "put(ms)",
                "last-sent",
                "last-done",
                "p50(ms)",
                "p99(ms)"
            );
            for f in &self.fanout {
                out += &format!(
                    "{:<9} {:<9} {:>8} {:>6} {:>8} {:>7} {:>7} {:>8.2} {:>11.2} {:>11.2} {:>8.2} {:>8.2}\n",
                    "fanout",
                    f.target,
                    f.watchers,
                    f.ready,
                    f.released,
                    f.changed,
                    f.not_released + f.early,
                    f.put_ms,
                    f.last_from_put_sent_ms,
                    f.last_from_put_done_ms,
                    f.release.p50_ms,
                    f.release.p99_ms
                );
            }
            out += "  last-sent/last-done: ms from just before the PUT was sent / from its response \
                    until the last watcher returned; p50/p99: per-watcher release after the PUT was sent;\n  \
                    missed: watchers that errored, returned before the write, or were still blocked at --fanout-timeout\n";
            for f in self.fanout.iter().filter(|f| f.first_error.is_some()) {
                out += &format!(
                    "  fanout {} first error: {}\n",
                    f.target,
                    f.first_error.as_deref().unwrap_or_default()
                );
            }
        }
        for c in &self.checks {
            out += &c.to_table();
        }
        if !self.rss.is_empty() {
            out += "\n";
            let mib = |r: Option<Rss>, f: fn(Rss) -> u64| {
                r.map_or("?".to_owned(), |r| {
                    format!("{:.1} MiB", f(r) as f64 / 1024.0)
                })
            };
            for r in &self.rss {
                out += &format!(
                    "rss       {:<9} pid {:<7} idle {:>10}   after {:>10}   peak {:>10}\n",
                    r.target,
                    r.pid,
                    mib(r.idle, |r| r.rss_kib),
                    mib(r.after, |r| r.rss_kib),
                    mib(r.after.or(r.idle), |r| r.hwm_kib),
                );
            }
        }
        if !self.goals.is_empty() {
            out += "\ngoals (from the issue)\n";
            for g in &self.goals {
                out += &format!(
                    "  {:<6}  {}: {}\n",
                    if g.met { "met" } else { "MISSED" },
                    g.goal,
                    g.measured
                );
            }
        }
        out
    }
}
