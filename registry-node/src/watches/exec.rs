//! Child processes of watch handlers and of `registry-node lock`: how a command
//! line becomes a process (`sh -c` or a direct exec) and how it is stopped.
//!
//! Children run in their own process group so that stopping one also stops what
//! a `sh -c` line started. Signals other than SIGKILL are sent with the shell's
//! `kill` builtin: the workspace forbids `unsafe`, and neither std nor tokio can
//! send SIGTERM.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// Shell used when `$SHELL` is unset (Consul's `ExecScript` default).
const DEFAULT_SHELL: &str = "/bin/sh";

/// A command to run as a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildCommand {
    /// A program and its arguments, run directly.
    Exec(Vec<String>),
    /// A command line for the shell (`$SHELL -c`, `/bin/sh` by default).
    Shell(String),
}

impl ChildCommand {
    /// Consul's rule for trailing command-line arguments: with `shell` they are
    /// joined by spaces into one shell line, otherwise run as they are.
    pub fn from_args(args: &[String], shell: bool) -> ChildCommand {
        if shell {
            ChildCommand::Shell(args.join(" "))
        } else {
            ChildCommand::Exec(args.to_vec())
        }
    }

    /// A `Command` for this child with stdin closed; `own_group` puts it in a new
    /// process group (led by the child) so [`terminate`] reaches its descendants.
    /// Callers add environment and standard streams.
    pub fn command(&self, own_group: bool) -> io::Result<Command> {
        let mut cmd = match self {
            ChildCommand::Exec(args) => {
                let (program, rest) = args
                    .split_first()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
                let mut cmd = Command::new(program);
                cmd.args(rest);
                cmd
            }
            ChildCommand::Shell(line) => {
                let shell = std::env::var("SHELL")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| DEFAULT_SHELL.to_string());
                let mut cmd = Command::new(shell);
                cmd.arg("-c").arg(line);
                cmd
            }
        };
        cmd.stdin(Stdio::null());
        if own_group {
            cmd.process_group(0);
        }
        Ok(cmd)
    }
}

/// Sends `signal` (a name such as `TERM`) to process `pid`, or to the process
/// group it leads when `group` is set.
pub async fn send_signal(pid: u32, signal: &str, group: bool) -> io::Result<()> {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let status = Command::new(DEFAULT_SHELL)
        .arg("-c")
        .arg("kill -s \"$0\" -- \"$1\" 2>/dev/null")
        .arg(signal)
        .arg(&target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -s {signal} {target} failed ({status})"
        )))
    }
}

/// Stops a child started with [`ChildCommand::command`]: SIGTERM (to its process
/// group when it has its own), then SIGKILL once `grace` has passed without it
/// exiting. Returns its exit status.
pub async fn terminate(child: &mut Child, grace: Duration, group: bool) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let Some(pid) = child.id() else {
        return child.wait().await;
    };
    if let Err(e) = send_signal(pid, "TERM", group).await {
        tracing::debug!(pid, error = %e, "SIGTERM to the child failed");
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            tracing::debug!(
                pid,
                "child did not exit within the grace period; killing it"
            );
            if send_signal(pid, "KILL", group).await.is_err() {
                child.start_kill()?;
            }
            child.wait().await
        }
    }
}

/// Consul's wording of a child's failure (`exit status 3`, `signal: terminated`).
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal: {}", signal_name(sig)),
        (None, None) => status.to_string(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        1 => "hangup".into(),
        2 => "interrupt".into(),
        9 => "killed".into(),
        15 => "terminated".into(),
        other => format!("signal {other}"),
    }
}
