//! Process-level odds and ends: raising the open-file limit for the fan-out
//! and reading a server's resident memory and CPU time from `/proc`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::Serialize;

/// Raise `RLIMIT_NOFILE` so that `needed` descriptors can be open at once.
/// The soft limit goes up to the hard one; as root the hard one is raised too.
/// Returns the soft limit in force afterwards.
pub fn raise_nofile(needed: u64) -> Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    if soft >= needed {
        return Ok(soft);
    }
    let new_hard = hard.max(needed);
    let new_soft = needed.max(soft).min(new_hard);
    if setrlimit(Resource::RLIMIT_NOFILE, new_soft, new_hard).is_ok() {
        return Ok(new_soft);
    }
    // Not root (or above fs.nr_open): take what the hard limit allows.
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(RLIMIT_NOFILE)")?;
    if hard < needed {
        bail!(
            "need {needed} open files for the fan-out but the hard limit is {hard}; \
             raise it (`ulimit -Hn {needed}` as root, or LimitNOFILE=) or lower --watchers"
        );
    }
    Ok(hard)
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rss {
    /// Current resident set (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set since the process started (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

/// Read `VmRSS`/`VmHWM` of `pid`.
pub fn read_rss(pid: u32) -> Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("parsing {path}"))
}

/// `VmRSS`/`VmHWM` from the text of a `/proc/<pid>/status` file.
pub fn parse_status(text: &str) -> Result<Rss> {
    Ok(Rss {
        rss_kib: status_field(text, "VmRSS")?,
        hwm_kib: status_field(text, "VmHWM")?,
    })
}

/// A numeric `Name:   value [kB]` line of `/proc/<pid>/status`.
pub fn status_field(text: &str, name: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{name} missing"))
}

/// CPU time and thread count of a process, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuTimes {
    /// User-mode time, in clock ticks (`utime`, field 14).
    pub utime: u64,
    /// Kernel-mode time, in clock ticks (`stime`, field 15).
    pub stime: u64,
    /// Threads (`num_threads`, field 20).
    pub threads: u64,
}

impl CpuTimes {
    /// `utime + stime`.
    pub fn total(&self) -> u64 {
        self.utime + self.stime
    }
}

/// Read `utime`/`stime`/`num_threads` of `pid`.
pub fn read_cpu(pid: u32) -> Result<CpuTimes> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text).with_context(|| format!("parsing {path}: {:?}", text.trim_end()))
}

/// `utime`/`stime`/`num_threads` from the text of a `/proc/<pid>/stat` file.
///
/// Field 2, the command name, is in parentheses and may itself contain spaces
/// and parentheses, so the fields are counted from the *last* `)`.
pub fn parse_stat(text: &str) -> Result<CpuTimes> {
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("no `)` closing the command name")?;
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("too few fields")?
            .parse()
            .with_context(|| format!("field {n} is not a number"))
    };
    Ok(CpuTimes {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/<pid>/stat`
/// times. Falls back to 100, the value on every common Linux platform.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Share of one core used between two readings `wall` apart, in percent.
pub fn cpu_percent(before: CpuTimes, after: CpuTimes, wall: Duration, ticks_per_sec: u64) -> f64 {
    let ticks = after.total().saturating_sub(before.total());
    if wall.is_zero() || ticks_per_sec == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_sec as f64 / wall.as_secs_f64() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        let rss = read_rss(std::process::id()).unwrap();
        assert!(rss.rss_kib > 0 && rss.hwm_kib >= rss.rss_kib);
    }

    const STATUS: &str = "Name:\tregistry-node\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  812344 kB\nVmSize:\t  745120 kB\nVmHWM:\t   41236 kB\n\
        VmRSS:\t   23872 kB\nRssAnon:\t   12000 kB\nThreads:\t5\n";

    #[test]
    fn parses_status() {
        let rss = parse_status(STATUS).unwrap();
        assert_eq!((rss.rss_kib, rss.hwm_kib), (23_872, 41_236));
        assert_eq!(status_field(STATUS, "Threads").unwrap(), 5);
        // `VmRSS` must not match a longer name that starts the same way.
        assert!(status_field("VmRSSx:\t1 kB\n", "VmRSS").is_err());
        assert!(parse_status("Name:\tx\nVmRSS:\t1 kB\n").is_err());
    }

    #[test]
    fn parses_stat_with_awkward_command_name() {
        // Real layout (Linux 6.x), with a comm that holds spaces and parens.
        let stat = "4242 (reg (x) node) S 1 4242 4242 0 -1 4194560 1530 0 0 0 \
                    1234 567 0 0 20 0 7 0 98765 745120000 5968 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0 0 0 0\n";
        let t = parse_stat(stat).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                utime: 1234,
                stime: 567,
                threads: 7
            }
        );
        assert_eq!(t.total(), 1801);
        assert!(parse_stat("4242 (x) S 1 2 3").is_err());
        assert!(parse_stat("no parens at all").is_err());
    }

    #[test]
    fn reads_own_cpu() {
        let t = read_cpu(std::process::id()).unwrap();
        assert!(t.threads >= 1);
        assert!(clock_ticks() > 0);
    }

    #[test]
    fn percent_of_one_core() {
        let at = |utime, stime| CpuTimes {
            utime,
            stime,
            threads: 1,
        };
        // 250 ticks at 100/s over 10 s = 0.25 core.
        let p = cpu_percent(at(100, 50), at(300, 100), Duration::from_secs(10), 100);
        assert!((p - 25.0).abs() < 1e-9);
        assert_eq!(cpu_percent(at(5, 5), at(5, 5), Duration::ZERO, 100), 0.0);
    }
}
