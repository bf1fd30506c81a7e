//! Command line: consul-template's Go-style flags (names and defaults as
//! upstream), turned into a [`ConfigLayer`] that wins over config files.
//!
//! `main` runs argv through [`goflags::normalize`] first, so `-once`,
//! `-wait=1s:4s` and `-template "in:out:cmd"` all reach clap as long flags.
//! Flags are `Option`s: only what the user typed overrides the files.

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{ArgAction, Parser};
use regex::Regex;

use crate::config::{
    AuthLayer, CommandLayer, ConfigLayer, ConsulLayer, ExecLayer, RetryLayer, SyslogLayer,
    TemplateLayer, Wait, WaitLayer, normalize_log_level, parse_duration, parse_signal,
};

/// Exit code of a flag parse error (upstream).
pub const EXIT_FLAG_ERROR: i32 = 13;

fn go_bool(s: &str) -> Result<bool, String> {
    goflags::parse_bool(s)
}

fn duration_arg(s: &str) -> Result<String, String> {
    parse_duration(s).map(|_| s.to_string())
}

fn wait_arg(s: &str) -> Result<String, String> {
    Wait::parse(s).map(|_| s.to_string())
}

fn signal_arg(s: &str) -> Result<String, String> {
    parse_signal(s).map(|_| s.to_string())
}

fn level_arg(s: &str) -> Result<String, String> {
    normalize_log_level(s)
}

/// consul-template's flags, plus `-check-cmd`.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "templater",
    version,
    about = "Renders templates from registry data (consul-template compatible)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Config file or directory (repeatable; HCL or JSON; later wins).
    #[arg(long, value_name = "PATH")]
    pub config: Vec<PathBuf>,

    /// Registry address (default CONSUL_HTTP_ADDR, else 127.0.0.1:8500).
    #[arg(long, value_name = "ADDR")]
    pub consul_addr: Option<String>,
    /// ACL token (default CONSUL_TOKEN, then CONSUL_HTTP_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub consul_token: Option<String>,
    /// Basic auth `user[:pass]`.
    #[arg(long, value_name = "USER[:PASS]")]
    pub consul_auth: Option<String>,
    /// Retry failed queries (default true; false = the first failure is fatal).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub consul_retry: Option<bool>,
    /// Give up after this many failures in a row (exit 14). Unset or 0 =
    /// retry forever (upstream's default 12 gives up after ~5 minutes).
    #[arg(long, value_name = "N")]
    pub consul_retry_attempts: Option<u32>,
    /// First retry delay, doubled per attempt (default 250ms).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub consul_retry_backoff: Option<String>,
    /// Legacy alias of -consul-retry-backoff.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION", hide = true)]
    pub retry: Option<String>,
    /// Cap of the retry delay (default 1m; 0 = uncapped).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub consul_retry_max_backoff: Option<String>,

    /// `in[:out[:command]]` (repeatable).
    #[arg(long, value_name = "TEMPLATE")]
    pub template: Vec<String>,
    /// Render once, run commands, exit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub once: Option<bool>,
    /// Print `> <dest>` and the output to stdout instead of writing; no commands.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub dry: Option<bool>,
    /// Parse the templates and exit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub parse_only: Option<bool>,
    /// Quiescence `min[:max]` (max defaults to 4×min).
    #[arg(long, value_parser = wait_arg, value_name = "MIN[:MAX]")]
    pub wait: Option<String>,
    /// Allow stale reads up to this lag (default 2s; 0 = consistent).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub max_stale: Option<String>,
    /// Template execution errors exit the process (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub template_error_fatal: Option<bool>,
    /// Default left delimiter.
    #[arg(long, value_name = "DELIM")]
    pub default_left_delimiter: Option<String>,
    /// Default right delimiter.
    #[arg(long, value_name = "DELIM")]
    pub default_right_delimiter: Option<String>,

    /// Exec mode: supervise this command.
    #[arg(long, value_name = "COMMAND")]
    pub exec: Option<String>,
    /// Signal that stops the child (default SIGINT).
    #[arg(long, value_parser = signal_arg, value_name = "SIGNAL")]
    pub exec_kill_signal: Option<String>,
    /// Time before SIGKILL (default 30s).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub exec_kill_timeout: Option<String>,
    /// Signal sent to the child on a change (default: restart the child).
    #[arg(long, value_parser = signal_arg, value_name = "SIGNAL")]
    pub exec_reload_signal: Option<String>,
    /// Random delay up to this before signalling the child.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub exec_splay: Option<String>,

    /// Graceful stop signal (default SIGINT; exit 12).
    #[arg(long, value_parser = signal_arg, value_name = "SIGNAL")]
    pub kill_signal: Option<String>,
    /// Reload signal (default SIGHUP).
    #[arg(long, value_parser = signal_arg, value_name = "SIGNAL")]
    pub reload_signal: Option<String>,
    /// trace, debug, info, warn, err (default warn).
    #[arg(long, value_parser = level_arg, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Write the PID here; removed at exit.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<String>,
    /// Log to syslog (accepted; logs still go to stderr).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub syslog: Option<bool>,
    /// Syslog facility (accepted, ignored).
    #[arg(long, value_name = "FACILITY")]
    pub syslog_facility: Option<String>,
    /// Syslog name (accepted, ignored).
    #[arg(long, value_name = "NAME")]
    pub syslog_name: Option<String>,
    /// De-duplication mode (not supported: rejected).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub dedup: Option<bool>,

    /// Ours: validate every rendered file before it replaces the destination
    /// (`{{.TempPath}}` or `$TEMPLATER_TEMP_PATH`; must exit 0).
    #[arg(long, value_name = "COMMAND")]
    pub check_cmd: Option<String>,

    /// Print the version and exit.
    #[arg(long, short = 'v', action = ArgAction::SetTrue)]
    pub version: bool,
}

impl Cli {
    /// The command line as a config layer (the top one). Errors are flag
    /// errors (exit 13).
    pub fn to_layer(&self) -> Result<ConfigLayer, String> {
        let mut layer = ConfigLayer::default();
        let retry = RetryLayer {
            enabled: self.consul_retry,
            attempts: self.consul_retry_attempts,
            backoff: self.consul_retry_backoff.clone().or(self.retry.clone()),
            max_backoff: self.consul_retry_max_backoff.clone(),
        };
        let auth = self.consul_auth.as_ref().map(|a| {
            let (user, pass) = match a.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(p.to_string())),
                None => (a.clone(), None),
            };
            AuthLayer {
                enabled: Some(true),
                username: Some(user),
                password: pass,
            }
        });
        layer.consul = Some(ConsulLayer {
            address: self.consul_addr.clone(),
            token: self.consul_token.clone(),
            auth,
            retry: Some(retry),
        });
        for t in &self.template {
            layer.template.push(parse_template_spec(t)?);
        }
        if let Some(cmd) = &self.exec {
            layer.exec = Some(ExecLayer {
                command: Some(CommandLayer::One(cmd.clone())),
                enabled: Some(true),
                timeout: None,
                kill_signal: self.exec_kill_signal.clone(),
                kill_timeout: self.exec_kill_timeout.clone(),
                reload_signal: self.exec_reload_signal.clone(),
                splay: self.exec_splay.clone(),
            });
        } else if self.exec_kill_signal.is_some()
            || self.exec_kill_timeout.is_some()
            || self.exec_reload_signal.is_some()
            || self.exec_splay.is_some()
        {
            layer.exec = Some(ExecLayer {
                kill_signal: self.exec_kill_signal.clone(),
                kill_timeout: self.exec_kill_timeout.clone(),
                reload_signal: self.exec_reload_signal.clone(),
                splay: self.exec_splay.clone(),
                ..Default::default()
            });
        }
        if self.dedup == Some(true) {
            return Err("-dedup: de-duplication mode is not supported".into());
        }
        layer.wait = self.wait.clone().map(WaitLayer::Text);
        layer.max_stale = self.max_stale.clone();
        layer.log_level = self.log_level.clone();
        layer.pid_file = self.pid_file.clone();
        layer.kill_signal = self.kill_signal.clone();
        layer.reload_signal = self.reload_signal.clone();
        layer.template_error_fatal = self.template_error_fatal;
        if self.default_left_delimiter.is_some() || self.default_right_delimiter.is_some() {
            layer.default_delimiters = Some(crate::config::DelimitersLayer {
                left: self.default_left_delimiter.clone(),
                right: self.default_right_delimiter.clone(),
            });
        }
        if self.syslog.is_some() || self.syslog_facility.is_some() || self.syslog_name.is_some() {
            layer.syslog = Some(SyslogLayer {
                enabled: Some(self.syslog.unwrap_or(true)),
                facility: self.syslog_facility.clone(),
                name: self.syslog_name.clone(),
            });
        }
        layer.check_command = self.check_cmd.clone();
        layer.once = self.once;
        layer.dry = self.dry;
        layer.parse_only = self.parse_only;
        Ok(layer)
    }
}

/// Upstream's split of `-template`: each match is an optional drive letter
/// plus a run of non-colons, so empty segments vanish (B.2).
static SPEC_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([a-zA-Z]:)?([^:]+)").expect("static regex"));

/// Parses `in[:out[:command]]` exactly as upstream: Windows drive letters
/// stay with their path, a fourth and later part is re-joined into the
/// command with `:`, and `a:b:c` reads as source `a:b`, destination `c`.
pub fn parse_template_spec(spec: &str) -> Result<TemplateLayer, String> {
    if spec.trim().is_empty() {
        return Err("template: cannot be empty".into());
    }
    let parts: Vec<&str> = SPEC_RE.find_iter(spec).map(|m| m.as_str()).collect();
    let (source, destination, command) = match parts.as_slice() {
        [] => return Err("template: cannot be empty".into()),
        [s] => (*s, None, None),
        [s, d] => (*s, Some(*d), None),
        [s, d, rest @ ..] => (*s, Some(*d), Some(rest.join(":"))),
    };
    Ok(TemplateLayer {
        source: Some(source.to_string()),
        destination: destination.map(str::to_string),
        command: command.map(CommandLayer::One),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> (String, Option<String>, Option<String>) {
        let t = parse_template_spec(s).unwrap();
        let cmd = t.command.map(|c| match c {
            CommandLayer::One(s) => s,
            CommandLayer::List(v) => v.join(" "),
        });
        (t.source.unwrap(), t.destination, cmd)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn template_spec_like_upstream() {
        assert_eq!(spec("in.ctmpl"), ("in.ctmpl".into(), None, None));
        assert_eq!(spec("in:out"), ("in".into(), s("out"), None));
        assert_eq!(
            spec(
                "./nginx.ctmpl:/usr/local/nginx/conf/nginx.conf:/usr/local/nginx/sbin/nginx -s reload"
            ),
            (
                "./nginx.ctmpl".into(),
                s("/usr/local/nginx/conf/nginx.conf"),
                s("/usr/local/nginx/sbin/nginx -s reload")
            )
        );
        assert_eq!(
            spec(r"C:\abc\123:D:\xyz\789:command"),
            (r"C:\abc\123".into(), s(r"D:\xyz\789"), s("command"))
        );
        // Extra colons are re-joined into the command.
        assert_eq!(
            spec("in:out:echo a:b:c"),
            ("in".into(), s("out"), s("echo a:b:c"))
        );
        // Upstream pitfalls, reproduced: a single letter looks like a drive.
        assert_eq!(spec("a:b:c"), ("a:b".into(), s("c"), None));
        // Empty segments disappear: the command becomes the destination.
        assert_eq!(spec("in::cmd"), ("in".into(), s("cmd"), None));
    }

    #[test]
    fn template_spec_empty_is_an_error() {
        for bad in ["", "   ", ":", ":::"] {
            assert_eq!(
                parse_template_spec(bad).unwrap_err(),
                "template: cannot be empty",
                "{bad:?}"
            );
        }
    }

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv: Vec<std::ffi::OsString> = vec!["templater".into()];
        argv.extend(args.iter().map(Into::into));
        Cli::try_parse_from(goflags::normalize(argv))
    }

    #[test]
    fn go_style_flags() {
        let c = cli(&[
            "-consul-addr",
            "10.11.97.181:8500",
            "-template",
            "./nginx.ctmpl:/tmp/nginx.conf:nginx -s reload",
            "-log-level=info",
            "-once",
            "-wait=1s:4s",
            "-dry=false",
            "-consul-retry-attempts=0",
        ])
        .unwrap();
        assert_eq!(c.consul_addr.as_deref(), Some("10.11.97.181:8500"));
        assert_eq!(c.template.len(), 1);
        assert_eq!(c.log_level.as_deref(), Some("info"));
        assert_eq!(c.once, Some(true));
        assert_eq!(c.dry, Some(false));
        assert_eq!(c.wait.as_deref(), Some("1s:4s"));
        assert_eq!(c.consul_retry_attempts, Some(0));
    }

    #[test]
    fn bad_values_are_flag_errors() {
        assert!(cli(&["-wait=5s:1s"]).is_err());
        assert!(cli(&["-wait=-1s"]).is_err());
        assert!(cli(&["-kill-signal=HUP"]).is_err());
        assert!(cli(&["-log-level=loud"]).is_err());
        assert!(cli(&["-nosuch"]).is_err());
        assert!(cli(&["extra"]).is_err());
        assert!(cli(&["-dedup"]).unwrap().to_layer().is_err());
        assert!(cli(&["-template", ":::"]).unwrap().to_layer().is_err());
    }

    #[test]
    fn version_flags() {
        assert!(cli(&["-v"]).unwrap().version);
        assert!(cli(&["-version"]).unwrap().version);
    }
}
