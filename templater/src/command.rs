//! Template commands and check commands (B.4.5).
//!
//! A single string with whitespace runs as `sh -c "<string>"`; a single word
//! or a list runs directly. Each command gets its own process group so a
//! timeout kills everything it started. The environment is ours plus
//! `CONSUL_HTTP_ADDR`/`CONSUL_HTTP_TOKEN`/`CONSUL_HTTP_AUTH`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

/// Placeholder of the staged file in a check command.
pub const TEMP_PATH_PLACEHOLDER: &str = "{{.TempPath}}";
/// Environment variable holding the staged file for a check command.
pub const TEMP_PATH_ENV: &str = "TEMPLATER_TEMP_PATH";

/// A command that failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not start.
    #[error("failed to execute {command:?}: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited non-zero (or by a signal).
    #[error("command {command:?} failed: {status}{}", stderr_suffix(stderr))]
    Failed {
        /// The command.
        command: String,
        /// `exit status: 1`.
        status: String,
        /// Its stderr (check commands only; template commands share ours).
        stderr: String,
    },
    /// It ran longer than its timeout and was killed.
    #[error("command {command:?} did not finish within {timeout:?}")]
    Timeout {
        /// The command.
        command: String,
        /// The limit.
        timeout: Duration,
    },
}

fn stderr_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The process to run for `cmd` (upstream's shell rule).
pub fn build(cmd: &[String]) -> Command {
    let mut c = match cmd {
        [one] if one.contains(char::is_whitespace) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(one);
            c
        }
        [first, rest @ ..] => {
            let mut c = Command::new(first);
            c.args(rest);
            c
        }
        [] => Command::new("true"),
    };
    c.process_group(0);
    c
}

/// `cmd` as one line for logs.
pub fn display(cmd: &[String]) -> String {
    cmd.join(" ")
}

/// Identical command lists run once per pass, in first-seen order (#1448).
pub fn dedup<T: PartialEq + Clone>(cmds: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for c in cmds {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    out
}

/// Runs a template command: stdio inherited, must exit 0 within `timeout`
/// (0 = started and not waited for).
pub async fn run(
    cmd: &[String],
    timeout: Duration,
    env: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let mut c = build(cmd);
    c.envs(env).stdin(Stdio::null());
    exec(c, cmd, timeout, false).await
}

/// Runs a check command on the staged file: `{{.TempPath}}` is replaced by
/// its path and `TEMPLATER_TEMP_PATH` is set; stderr is captured for the log.
pub async fn check(
    check_cmd: &str,
    temp: &Path,
    timeout: Duration,
    env: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let text = check_cmd.replace(TEMP_PATH_PLACEHOLDER, &shell_quote(&temp.to_string_lossy()));
    let cmd = vec![text];
    let mut c = Command::new("sh");
    c.arg("-c").arg(&cmd[0]).process_group(0);
    c.envs(env)
        .env(TEMP_PATH_ENV, temp)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    exec(c, &cmd, timeout, true).await
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

async fn exec(
    mut c: Command,
    cmd: &[String],
    timeout: Duration,
    capture: bool,
) -> Result<(), CommandError> {
    let command = display(cmd);
    let mut child = c.spawn().map_err(|source| CommandError::Spawn {
        command: command.clone(),
        source,
    })?;
    if timeout.is_zero() {
        // Not waited for; reap in the background.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        return Ok(());
    }
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let collect = async {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let waited = tokio::time::timeout(timeout, async {
        let (status, err) = tokio::join!(child.wait(), collect);
        (status, err)
    })
    .await;
    match waited {
        Err(_) => {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Err(CommandError::Timeout { command, timeout })
        }
        Ok((Ok(status), err)) if status.success() => {
            let _ = (capture, err);
            Ok(())
        }
        Ok((Ok(status), err)) => Err(CommandError::Failed {
            command,
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        }),
        Ok((Err(source), _)) => Err(CommandError::Spawn { command, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn dedup_keeps_first_order() {
        let cmds = [
            v(&["nginx -s reload"]),
            v(&["a"]),
            v(&["nginx -s reload"]),
            v(&["a", "b"]),
        ];
        assert_eq!(
            dedup(&cmds),
            vec![v(&["nginx -s reload"]), v(&["a"]), v(&["a", "b"])]
        );
    }

    #[test]
    fn shell_only_for_one_string_with_whitespace() {
        let prog = |c: &[String]| {
            build(c)
                .as_std()
                .get_program()
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(prog(&v(&["nginx -s reload"])), "sh");
        assert_eq!(prog(&v(&["reload.sh"])), "reload.sh");
        assert_eq!(prog(&v(&["nginx", "-s", "reload"])), "nginx");
    }

    #[tokio::test]
    async fn run_fail_timeout_and_check() {
        let env = BTreeMap::from([("X_TEST".to_string(), "yes".to_string())]);
        run(
            &v(&["test \"$X_TEST\" = yes"]),
            Duration::from_secs(5),
            &env,
        )
        .await
        .unwrap();
        let e = run(&v(&["exit 3"]), Duration::from_secs(5), &env)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exit status: 3"), "{e}");
        let e = run(&v(&["sleep 5"]), Duration::from_millis(100), &env)
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("it's.conf");
        std::fs::write(&f, "ok").unwrap();
        check(
            "grep -q ok {{.TempPath}} && test -f \"$TEMPLATER_TEMP_PATH\"",
            &f,
            Duration::from_secs(5),
            &env,
        )
        .await
        .unwrap();
        let e = check(
            "echo bad config >&2; exit 1",
            &f,
            Duration::from_secs(5),
            &env,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("bad config"), "{e}");
    }
}
