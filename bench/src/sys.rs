//! Process-level odds and ends: raising the open-file limit for the fan-out
//! and reading a server's resident memory from `/proc`.

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
    let field = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} missing in {path}"))
    };
    Ok(Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        let rss = read_rss(std::process::id()).unwrap();
        assert!(rss.rss_kib > 0 && rss.hwm_kib >= rss.rss_kib);
    }
}
