//! Script checks (`args`; Consul's `CheckMonitor`).
//!
//! The command runs in its own process group with stdout and stderr merged into one pipe and
//! captured (the last `cap` bytes, Consul's `Captured …` prefix when cut). Exit 0 is passing,
//! 1 warning, anything else critical. On timeout the whole group is killed with SIGKILL and the
//! result is critical `Timed out (<timeout>) running check`, followed by the output so far.
//! When the check is stopped mid-run (the future is dropped) the group is killed as well.
//!
//! Like Go's `cmd.Wait` with a non-file writer, a run ends when the command has exited *and*
//! every holder of the output pipe has closed it, so background children count toward the
//! timeout.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use registry_api::{CRITICAL, GoDuration, PASSING, WARNING};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::time::timeout;

use super::Outcome;
use super::output::{RingBuffer, errno_text};

/// After a kill, how long to wait for the pipe to drain before giving up on the output.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(1);

/// A script probe.
pub(super) struct ScriptCheck {
    args: Vec<String>,
    timeout: Duration,
    max_output: usize,
}

impl ScriptCheck {
    pub(super) fn new(args: Vec<String>, timeout: Duration, max_output: usize) -> Self {
        Self {
            args,
            timeout,
            max_output,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        let (mut child, mut reader) = match self.spawn() {
            Ok(spawned) => spawned,
            Err(e) => return Outcome::new(CRITICAL, e),
        };
        // Kills the group if this future is dropped before the child is reaped.
        let mut group = GroupGuard(child.id());
        let mut buf = RingBuffer::new(self.max_output);

        let finished = timeout(self.timeout, async {
            let (status, _) = tokio::join!(child.wait(), read_all(&mut reader, &mut buf));
            status
        })
        .await;
        match finished {
            Ok(status) => {
                group.disarm();
                exit_outcome(status, buf.captured())
            }
            Err(_) => {
                group.kill();
                let _ = timeout(DRAIN_AFTER_KILL, read_all(&mut reader, &mut buf)).await;
                // Wait so two instances of the script never run at once (as Consul does).
                let _ = child.wait().await;
                group.disarm();
                let mut message = format!(
                    "Timed out ({}) running check",
                    GoDuration::from(self.timeout)
                );
                let output = buf.captured();
                if !output.is_empty() {
                    message.push_str("\n\n");
                    message.push_str(&output);
                }
                tracing::warn!(timeout = %GoDuration::from(self.timeout), "timed out running check");
                Outcome::new(CRITICAL, message)
            }
        }
    }

    /// Starts the command in a new process group, stdout and stderr on one pipe.
    fn spawn(&self) -> Result<(Child, pipe::Receiver), String> {
        let Some((program, rest)) = self.args.split_first() else {
            return Err("exec: no command".into());
        };
        let (reader, writer) = io::pipe().map_err(|e| format!("pipe: {}", errno_text(&e)))?;
        let writer_err = writer
            .try_clone()
            .map_err(|e| format!("pipe: {}", errno_text(&e)))?;
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_err)
            .process_group(0);
        let spawned = cmd.spawn();
        // The command holds our copies of the write end: drop it, or EOF never comes.
        drop(cmd);
        let child = spawned.map_err(|e| spawn_error(program, &e))?;
        let reader = pipe::Receiver::from_owned_fd(reader.into())
            .map_err(|e| format!("pipe: {}", errno_text(&e)))?;
        Ok((child, reader))
    }
}

/// Reads until EOF (or an error) into `buf`.
async fn read_all(reader: &mut pipe::Receiver, buf: &mut RingBuffer) {
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => buf.write(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading check output failed");
                return;
            }
        }
    }
}

/// Consul's exit-code mapping: 0 passing, 1 warning, anything else (or a wait error) critical.
fn exit_outcome(status: io::Result<ExitStatus>, output: String) -> Outcome {
    match status.map(|s| s.code()) {
        Ok(Some(0)) => Outcome::new(PASSING, output),
        Ok(Some(1)) => Outcome::new(WARNING, output),
        _ => Outcome::new(CRITICAL, output),
    }
}

/// Go's `exec` texts: a bare name not on `$PATH`, or the failing `fork/exec`.
fn spawn_error(program: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound && !program.contains('/') {
        format!("exec: {program:?}: executable file not found in $PATH")
    } else {
        format!("fork/exec {program}: {}", errno_text(e))
    }
}

/// SIGKILLs a process group unless disarmed. Disarm only after the leader is reaped: until
/// then its zombie keeps the group ID from being reused.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok())
            && let Err(e) = killpg(Pid::from_raw(pgid), Signal::SIGKILL)
        {
            tracing::warn!(pgid, error = %e, "failed to kill check process group");
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
