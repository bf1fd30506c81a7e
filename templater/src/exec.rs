//! Exec mode (B.4.7): one supervised child, started after every template
//! rendered once; on a change it gets the reload signal (after a random
//! splay) or, without one, is restarted; on stop it gets the kill signal,
//! then SIGKILL after `kill_timeout`. The child runs in its own process group
//! and signals go to the group, so `sh -c` wrappers pass them on.
//!
//! The runner exits with the child's code when the child exits by itself.
//!
//! A child that has just started may not handle its reload signal yet, and
//! the default action of SIGHUP is to terminate: the first change often comes
//! right after the first render, i.e. right after the spawn (nginx died of it).
//! So during its first [`START_GRACE`] a reload waits until the child catches
//! or ignores the signal (`SigCgt`/`SigIgn` in `/proc/<pid>/status`).

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rand::Rng;
use tokio::process::Child;
use tracing::{info, warn};

use crate::command;
use crate::config::ExecConfig;

/// How long after its start a reload waits for the child to handle the signal.
pub const START_GRACE: Duration = Duration::from_secs(5);

/// The supervised child.
pub struct ExecChild {
    cfg: ExecConfig,
    env: BTreeMap<String, String>,
    child: Child,
    pid: i32,
    started: Instant,
}

/// Whether a `/proc/<pid>/status` text shows `sig` caught or ignored; `None`
/// when the masks are missing (not Linux, or the process is gone).
pub fn handles_signal(status: &str, sig: Signal) -> Option<bool> {
    let bit = 1u64 << (sig as i32 - 1);
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some((mask("SigCgt:")? | mask("SigIgn:")?) & bit != 0)
}

/// The exit code the templater takes over from the child: its code, or
/// 128 + signal when it was killed (the shell convention).
pub fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

impl ExecChild {
    /// Starts the child.
    pub fn spawn(cfg: &ExecConfig, env: &BTreeMap<String, String>) -> std::io::Result<ExecChild> {
        let mut c = command::build(&cfg.command);
        c.envs(env);
        let child = c.spawn()?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        info!(pid, command = %command::display(&cfg.command), "(child) spawning");
        Ok(ExecChild {
            cfg: cfg.clone(),
            env: env.clone(),
            child,
            pid,
            started: Instant::now(),
        })
    }

    /// Waits (at most until [`START_GRACE`] after the start) for the child to
    /// catch or ignore `sig`, so that it is not killed by a reload signal it
    /// will handle a moment later.
    async fn until_handled(&self, sig: Signal) {
        let path = format!("/proc/{}/status", self.pid);
        let deadline = self.started + START_GRACE;
        let mut waited = false;
        while Instant::now() < deadline {
            let status = std::fs::read_to_string(&path).unwrap_or_default();
            if handles_signal(&status, sig) != Some(false) {
                break;
            }
            waited = true;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if waited {
            info!(pid = self.pid, signal = %sig, waited = ?self.started.elapsed(), "(child) waited for the child to handle the signal");
        }
    }

    /// The child's PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits until the child exits (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends `sig` to the child's process group.
    pub fn signal(&self, sig: Signal) {
        if self.pid > 0
            && let Err(e) = killpg(Pid::from_raw(self.pid), sig)
        {
            warn!(pid = self.pid, signal = %sig, error = %e, "(child) cannot signal");
        }
    }

    async fn splay(&self) {
        if !self.cfg.splay.is_zero() {
            let ms = rand::rng().random_range(0..=self.cfg.splay.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// A template changed: the reload signal, or a restart without one.
    pub async fn reload(&mut self) -> std::io::Result<()> {
        self.splay().await;
        match self.cfg.reload_signal {
            Some(sig) => {
                self.until_handled(sig).await;
                info!(pid = self.pid, signal = %sig, "(child) reloading");
                self.signal(sig);
                Ok(())
            }
            None => {
                info!(pid = self.pid, "(child) restarting");
                self.kill().await;
                let next = ExecChild::spawn(&self.cfg, &self.env)?;
                *self = next;
                Ok(())
            }
        }
    }

    /// Stops the child: kill signal, then SIGKILL after `kill_timeout`.
    pub async fn stop(mut self) -> Option<ExitStatus> {
        self.splay().await;
        self.kill().await
    }

    async fn kill(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        info!(pid = self.pid, signal = %self.cfg.kill_signal, "(child) stopping");
        self.signal(self.cfg.kill_signal);
        match tokio::time::timeout(self.cfg.kill_timeout, self.child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                warn!(pid = self.pid, timeout = ?self.cfg.kill_timeout, "(child) did not stop; SIGKILL");
                self.signal(Signal::SIGKILL);
                self.child.wait().await.ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cmd: &str, reload: Option<Signal>) -> ExecConfig {
        ExecConfig {
            command: vec![cmd.to_string()],
            kill_signal: Signal::SIGINT,
            kill_timeout: Duration::from_secs(5),
            reload_signal: reload,
            splay: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn exit_code_is_the_childs() {
        let mut c = ExecChild::spawn(&cfg("exit 7", None), &BTreeMap::new()).unwrap();
        let s = c.wait().await.unwrap();
        assert_eq!(exit_code(&s), 7);
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill() {
        let mut c = cfg("trap '' INT; sleep 30", None);
        c.kill_timeout = Duration::from_millis(200);
        let child = ExecChild::spawn(&c, &BTreeMap::new()).unwrap();
        // Let the shell install its trap first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = child.stop().await.unwrap();
        assert_eq!(exit_code(&status), 128 + 9);
    }

    #[test]
    fn signal_masks() {
        let status = "Name:\tnginx\nSigIgn:\t0000000000001000\nSigCgt:\t0000000000004003\n";
        assert_eq!(handles_signal(status, Signal::SIGHUP), Some(true));
        assert_eq!(
            handles_signal(status, Signal::SIGPIPE),
            Some(true),
            "ignored"
        );
        assert_eq!(handles_signal(status, Signal::SIGUSR1), Some(false));
        assert_eq!(handles_signal("Name:\tx\n", Signal::SIGHUP), None);
    }

    /// What this test does: a child that installs its SIGHUP handler 300 ms
    /// after its start gets a reload right away; the signal waits for the
    /// handler, so the child handles it instead of dying of it.
    #[tokio::test]
    async fn early_reload_waits_for_the_handler() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("reloaded");
        let script = format!(
            "sleep 0.3; trap 'touch {}' HUP; while :; do sleep 0.05; done",
            flag.display()
        );
        let mut c =
            ExecChild::spawn(&cfg(&script, Some(Signal::SIGHUP)), &BTreeMap::new()).unwrap();
        c.reload().await.unwrap();
        for _ in 0..100 {
            if flag.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(flag.exists(), "the child handled the reload");
        assert!(
            c.child.try_wait().unwrap().is_none(),
            "and is still running"
        );
        c.stop().await;
    }

    #[tokio::test]
    async fn restart_without_reload_signal() {
        let mut c = ExecChild::spawn(&cfg("sleep 30", None), &BTreeMap::new()).unwrap();
        let first = c.pid();
        c.reload().await.unwrap();
        assert_ne!(c.pid(), first);
        c.stop().await;
    }
}
