//! Configuration: consul-template's config file keys (HCL or JSON), merged
//! with the command line into one validated [`Config`].
//!
//! Layering is upstream's: defaults (which read `CONSUL_HTTP_ADDR`,
//! `CONSUL_HTTP_TOKEN`, …) < `-config` files in order < command-line flags.
//! Every source is first read into a [`ConfigLayer`] (all fields optional),
//! layers are [merged](ConfigLayer::merge) (later wins, `template` lists are
//! concatenated), and [`ConfigLayer::finalize`] fills defaults and validates.
//! Nothing here logs or touches the process; the environment is passed in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::Value;

use crate::render::Dialect;

/// Upstream's `block_query_wait` default.
pub const DEFAULT_BLOCK_QUERY_WAIT: Duration = Duration::from_secs(60);
/// Upstream's `-max-stale` default: stale reads are on.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(2);
/// Upstream's `command_timeout` default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream's exec `kill_timeout` default.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream's `-consul-retry-backoff` default.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// Upstream's `-consul-retry-max-backoff` default.
pub const DEFAULT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The Consul client's default address.
pub const DEFAULT_CONSUL_ADDR: &str = "127.0.0.1:8500";

/// A configuration error (exit code 15), naming the source and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    /// File path, or `command line` / `environment`.
    pub source_name: String,
    /// What is wrong (with the key path when known).
    pub message: String,
}

impl ConfigError {
    fn new(source_name: &str, message: impl Into<String>) -> Self {
        ConfigError {
            source_name: source_name.to_string(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// The final configuration

/// The validated configuration the runner uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How to reach the registry.
    pub consul: ConsulConfig,
    /// Templates, config files first, then `-template` flags.
    pub templates: Vec<TemplateConfig>,
    /// Exec (supervise) mode, when a command is set.
    pub exec: Option<ExecConfig>,
    /// Global quiescence (`-wait`); per-template `wait` wins.
    pub wait: Option<Wait>,
    /// `-max-stale`: allow stale reads up to this lag (0 = consistent reads).
    pub max_stale: Duration,
    /// `block_query_wait`: the `?wait=` of every blocking query.
    pub block_query_wait: Duration,
    /// `-log-level` (lower case: trace, debug, info, warn, error).
    pub log_level: String,
    /// `-pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `-kill-signal` (`None` = disabled): graceful stop, exit 12.
    pub kill_signal: Option<Signal>,
    /// `-reload-signal` (`None` = disabled): re-read config and templates.
    pub reload_signal: Option<Signal>,
    /// `-once`: render once and exit.
    pub once: bool,
    /// `-dry`: print instead of writing; no commands.
    pub dry: bool,
    /// `-parse-only`: parse the templates and exit.
    pub parse_only: bool,
    /// `-syslog` (accepted, not supported: logs go to stderr).
    pub syslog: bool,
    /// `-template-error-fatal`: overrides every template's `error_fatal`.
    pub template_error_fatal: Option<bool>,
}

/// Registry connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsulConfig {
    /// `host:port` or a URL.
    pub address: String,
    /// ACL token ("" = none).
    pub token: String,
    /// Basic auth `user[:pass]`.
    pub auth: Option<String>,
    /// Retry policy of failed queries.
    pub retry: RetryConfig,
}

/// Retry policy of failed registry queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// `-consul-retry`: false = the first failure is fatal (exit 14).
    pub enabled: bool,
    /// `-consul-retry-attempts` when set explicitly and > 0: give up (exit 14)
    /// after that many failures in a row. `None` = retry forever — our default,
    /// unlike upstream's 12, which kills the process after ~5 minutes of
    /// registry outage (consul-template #2045).
    pub attempts: Option<u32>,
    /// First retry delay; doubles per attempt.
    pub backoff: Duration,
    /// Cap of the delay (0 = uncapped).
    pub max_backoff: Duration,
}

impl RetryConfig {
    /// The delay before retry number `attempt` (0-based): `backoff·2ⁿ`, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        let d = self.backoff.saturating_mul(factor);
        if self.max_backoff.is_zero() {
            d
        } else {
            d.min(self.max_backoff)
        }
    }
}

/// Quiescence: render after `min` of quiet, at the latest `max` after the first change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Quiet period.
    pub min: Duration,
    /// Upper bound after the first change.
    pub max: Duration,
}

impl Wait {
    /// Parses `min[:max]`; `max` defaults to 4×min; negative or max < min is an error.
    pub fn parse(text: &str) -> Result<Wait, String> {
        let (min, max) = match text.split_once(':') {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (text.trim(), None),
        };
        let min = parse_duration(min)?;
        let max = match max {
            Some(m) => parse_duration(m)?,
            None => min * 4,
        };
        Wait::new(min, max)
    }

    fn new(min: Duration, max: Duration) -> Result<Wait, String> {
        if max < min {
            return Err(format!(
                "wait: max ({max:?}) must be larger than min ({min:?})"
            ));
        }
        Ok(Wait { min, max })
    }
}

/// One template stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateConfig {
    /// Template file (read at start and on reload; watched for edits).
    pub source: Option<PathBuf>,
    /// Inline template text (exactly one of `source`/`contents`).
    pub contents: Option<String>,
    /// Output path (`None` only with `-dry`).
    pub destination: Option<PathBuf>,
    /// Command after a change: one string (shell when it has whitespace) or argv.
    pub command: Vec<String>,
    /// Time the command may take (0 = not waited for).
    pub command_timeout: Duration,
    /// Mode of the written file (`None` = keep the existing mode, else 0644).
    pub perms: Option<u32>,
    /// Keep the previous file as `<dest>.bak`.
    pub backup: bool,
    /// Left delimiter ("" = `{{`).
    pub left_delimiter: String,
    /// Right delimiter ("" = `}}`).
    pub right_delimiter: String,
    /// Per-template quiescence.
    pub wait: Option<Wait>,
    /// `missingkey=error`.
    pub error_on_missing_key: bool,
    /// Create missing parent directories (0755).
    pub create_dest_dirs: bool,
    /// Render errors exit the process (true) or are logged (false).
    pub error_fatal: bool,
    /// Template language (ours: `engine = "handlebars"`; default from the
    /// source's extension).
    pub dialect: Dialect,
    /// Ours: validate the rendered temp file before it replaces the destination.
    pub check_command: Option<String>,
}

impl TemplateConfig {
    /// A template with upstream defaults and nothing set.
    pub fn empty() -> TemplateConfig {
        TemplateConfig {
            source: None,
            contents: None,
            destination: None,
            command: Vec::new(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            perms: None,
            backup: false,
            left_delimiter: String::new(),
            right_delimiter: String::new(),
            wait: None,
            error_on_missing_key: false,
            create_dest_dirs: true,
            error_fatal: true,
            dialect: Dialect::Go,
            check_command: None,
        }
    }

    /// A name for logs and errors: the source path, else the destination.
    pub fn display_name(&self) -> String {
        match (&self.source, &self.destination) {
            (Some(s), _) => s.display().to_string(),
            (None, Some(d)) => format!("(inline) -> {}", d.display()),
            (None, None) => "(inline)".to_string(),
        }
    }
}

/// Exec (supervise) mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecConfig {
    /// The child: one string (shell when it has whitespace) or argv.
    pub command: Vec<String>,
    /// Signal that stops the child (default SIGINT, as upstream).
    pub kill_signal: Signal,
    /// Then SIGKILL after this long.
    pub kill_timeout: Duration,
    /// Signal sent on a change; `None` = restart the child (upstream default).
    pub reload_signal: Option<Signal>,
    /// Random delay up to this before a reload or kill signal.
    pub splay: Duration,
}

// ---------------------------------------------------------------------------
// Layers (what one source says)

/// Everything one source (a file or the command line) says; `None` = unset.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// `consul { … }`.
    pub consul: Option<ConsulLayer>,
    /// `template { … }` blocks (repeatable).
    #[serde(default)]
    pub template: Vec<TemplateLayer>,
    /// `exec { … }`.
    pub exec: Option<ExecLayer>,
    /// `wait { min max }` or `wait = "min:max"`.
    pub wait: Option<WaitLayer>,
    /// `max_stale`.
    pub max_stale: Option<String>,
    /// `block_query_wait`.
    pub block_query_wait: Option<String>,
    /// `log_level`.
    pub log_level: Option<String>,
    /// `pid_file`.
    pub pid_file: Option<String>,
    /// `kill_signal` ("" = disabled).
    pub kill_signal: Option<String>,
    /// `reload_signal` ("" = disabled).
    pub reload_signal: Option<String>,
    /// `syslog { … }` (accepted, not supported).
    pub syslog: Option<SyslogLayer>,
    /// `template_error_fatal`.
    pub template_error_fatal: Option<bool>,
    /// `default_delimiters { left right }`.
    pub default_delimiters: Option<DelimitersLayer>,
    /// Ours: a `check_command` for every template without its own.
    pub check_command: Option<String>,
    /// Command line only.
    #[serde(skip)]
    pub once: Option<bool>,
    /// Command line only.
    #[serde(skip)]
    pub dry: Option<bool>,
    /// Command line only.
    #[serde(skip)]
    pub parse_only: Option<bool>,
}

/// `consul { … }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulLayer {
    /// `address`.
    pub address: Option<String>,
    /// `token`.
    pub token: Option<String>,
    /// `auth { enabled username password }`.
    pub auth: Option<AuthLayer>,
    /// `retry { … }`.
    pub retry: Option<RetryLayer>,
}

/// `consul { auth { … } }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLayer {
    /// `enabled` (auto when a username is set).
    pub enabled: Option<bool>,
    /// `username`.
    pub username: Option<String>,
    /// `password`.
    pub password: Option<String>,
}

/// `consul { retry { … } }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryLayer {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `attempts` (0 = forever).
    pub attempts: Option<u32>,
    /// `backoff`.
    pub backoff: Option<String>,
    /// `max_backoff`.
    pub max_backoff: Option<String>,
}

/// `syslog { … }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogLayer {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `facility`.
    pub facility: Option<String>,
    /// `name`.
    pub name: Option<String>,
}

/// `default_delimiters { … }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelimitersLayer {
    /// `left`.
    pub left: Option<String>,
    /// `right`.
    pub right: Option<String>,
}

/// `wait` as a block or a `"min:max"` string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WaitLayer {
    /// `"5s:10s"`.
    Text(String),
    /// `wait { min = "5s" max = "10s" }`.
    Block {
        /// `min`.
        min: Option<String>,
        /// `max` (default 4×min).
        max: Option<String>,
    },
}

/// A command as a string or an argv list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CommandLayer {
    /// `"nginx -s reload"`.
    One(String),
    /// `["nginx", "-s", "reload"]`.
    List(Vec<String>),
}

impl CommandLayer {
    fn into_vec(self) -> Vec<String> {
        match self {
            CommandLayer::One(s) if s.trim().is_empty() => Vec::new(),
            CommandLayer::One(s) => vec![s],
            CommandLayer::List(v) => v,
        }
    }
}

/// `perms` as a number or an octal string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PermsLayer {
    /// A number (HCL `0600` is read as octal digits, see [`parse_text`]).
    Number(u32),
    /// `"0600"`.
    Text(String),
}

/// `exec { … }` (global, or a template's newer spelling of `command`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecLayer {
    /// `command`.
    pub command: Option<CommandLayer>,
    /// `enabled` (auto when a command is set).
    pub enabled: Option<bool>,
    /// `timeout` (template: the command timeout).
    pub timeout: Option<String>,
    /// `kill_signal`.
    pub kill_signal: Option<String>,
    /// `kill_timeout`.
    pub kill_timeout: Option<String>,
    /// `reload_signal` ("" or unset = restart the child).
    pub reload_signal: Option<String>,
    /// `splay`.
    pub splay: Option<String>,
}

/// `template { … }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateLayer {
    /// `source`.
    pub source: Option<String>,
    /// `contents`.
    pub contents: Option<String>,
    /// `destination`.
    pub destination: Option<String>,
    /// `command`.
    pub command: Option<CommandLayer>,
    /// `command_timeout`.
    pub command_timeout: Option<String>,
    /// `exec { command timeout }`.
    pub exec: Option<ExecLayer>,
    /// `perms`.
    pub perms: Option<PermsLayer>,
    /// `backup`.
    pub backup: Option<bool>,
    /// `left_delimiter`.
    pub left_delimiter: Option<String>,
    /// `right_delimiter`.
    pub right_delimiter: Option<String>,
    /// `wait`.
    pub wait: Option<WaitLayer>,
    /// `error_on_missing_key`.
    pub error_on_missing_key: Option<bool>,
    /// `error_fatal`.
    pub error_fatal: Option<bool>,
    /// `create_dest_dirs`.
    pub create_dest_dirs: Option<bool>,
    /// Ours: `engine = "go" | "handlebars"`.
    pub engine: Option<String>,
    /// Ours: `check_command`.
    pub check_command: Option<String>,
}

fn pick<T>(base: &mut Option<T>, over: Option<T>) {
    if over.is_some() {
        *base = over;
    }
}

impl ConfigLayer {
    /// Merges `over` on top of `self`: set fields win, templates are appended.
    pub fn merge(&mut self, over: ConfigLayer) {
        let ConfigLayer {
            consul,
            template,
            exec,
            wait,
            max_stale,
            block_query_wait,
            log_level,
            pid_file,
            kill_signal,
            reload_signal,
            syslog,
            template_error_fatal,
            default_delimiters,
            check_command,
            once,
            dry,
            parse_only,
        } = over;
        if let Some(c) = consul {
            let base = self.consul.get_or_insert_with(Default::default);
            pick(&mut base.address, c.address);
            pick(&mut base.token, c.token);
            if let Some(a) = c.auth {
                let b = base.auth.get_or_insert_with(Default::default);
                pick(&mut b.enabled, a.enabled);
                pick(&mut b.username, a.username);
                pick(&mut b.password, a.password);
            }
            if let Some(r) = c.retry {
                let b = base.retry.get_or_insert_with(Default::default);
                pick(&mut b.enabled, r.enabled);
                pick(&mut b.attempts, r.attempts);
                pick(&mut b.backoff, r.backoff);
                pick(&mut b.max_backoff, r.max_backoff);
            }
        }
        self.template.extend(template);
        if let Some(e) = exec {
            let b = self.exec.get_or_insert_with(Default::default);
            b.merge(e);
        }
        pick(&mut self.wait, wait);
        pick(&mut self.max_stale, max_stale);
        pick(&mut self.block_query_wait, block_query_wait);
        pick(&mut self.log_level, log_level);
        pick(&mut self.pid_file, pid_file);
        pick(&mut self.kill_signal, kill_signal);
        pick(&mut self.reload_signal, reload_signal);
        pick(&mut self.syslog, syslog);
        pick(&mut self.template_error_fatal, template_error_fatal);
        pick(&mut self.default_delimiters, default_delimiters);
        pick(&mut self.check_command, check_command);
        pick(&mut self.once, once);
        pick(&mut self.dry, dry);
        pick(&mut self.parse_only, parse_only);
    }

    /// Applies defaults (reading the environment through `env`) and validates.
    pub fn finalize(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let src = "configuration";
        let err = |m: String| ConfigError::new(src, m);
        let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let ConfigLayer {
            consul,
            template,
            exec,
            wait,
            max_stale,
            block_query_wait,
            log_level,
            pid_file,
            kill_signal,
            reload_signal,
            syslog,
            template_error_fatal,
            default_delimiters,
            check_command,
            once,
            dry,
            parse_only,
        } = self;
        let consul = consul.unwrap_or_default();
        let retry = consul.retry.unwrap_or_default();
        let dur =
            |key: &str, v: Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(v) => parse_duration(&v).map_err(|e| err(format!("{key}: {e}"))),
                }
            };
        let auth = match consul.auth {
            Some(a) if a.enabled != Some(false) => match a.username.filter(|u| !u.is_empty()) {
                Some(u) => Some(match a.password {
                    Some(p) => format!("{u}:{p}"),
                    None => u,
                }),
                None if a.enabled == Some(true) => {
                    return Err(err("consul.auth: enabled without a username".into()));
                }
                None => None,
            },
            _ => None,
        };
        let consul = ConsulConfig {
            address: consul
                .address
                .filter(|a| !a.trim().is_empty())
                .or_else(|| env_nonempty("CONSUL_HTTP_ADDR"))
                .unwrap_or_else(|| DEFAULT_CONSUL_ADDR.to_string()),
            token: consul
                .token
                .or_else(|| env_nonempty("CONSUL_TOKEN"))
                .or_else(|| env_nonempty("CONSUL_HTTP_TOKEN"))
                .unwrap_or_default(),
            auth,
            retry: RetryConfig {
                enabled: retry.enabled.unwrap_or(true),
                attempts: retry.attempts.filter(|a| *a > 0),
                backoff: dur("consul.retry.backoff", retry.backoff, DEFAULT_RETRY_BACKOFF)?,
                max_backoff: dur(
                    "consul.retry.max_backoff",
                    retry.max_backoff,
                    DEFAULT_RETRY_MAX_BACKOFF,
                )?,
            },
        };
        let wait = wait
            .map(|w| wait_layer(w).map_err(|e| err(format!("wait: {e}"))))
            .transpose()?;
        let delims = default_delimiters.unwrap_or_default();
        let mut templates = Vec::with_capacity(template.len());
        for (i, t) in template.into_iter().enumerate() {
            let mut t = template_config(t, &delims, check_command.as_deref())
                .map_err(|e| err(format!("template[{i}]: {e}")))?;
            if let Some(fatal) = template_error_fatal {
                t.error_fatal = fatal;
            }
            templates.push(t);
        }
        let dry = dry.unwrap_or(false);
        for (i, t) in templates.iter().enumerate() {
            if t.destination.is_none() && !dry {
                return Err(err(format!(
                    "template[{i}] ({}): missing destination",
                    t.display_name()
                )));
            }
        }
        let exec = match exec {
            Some(e) if e.enabled != Some(false) => {
                exec_config(e).map_err(|m| err(format!("exec: {m}")))?
            }
            _ => None,
        };
        let log_level = log_level
            .or_else(|| env_nonempty("CT_LOG"))
            .or_else(|| env_nonempty("CONSUL_TEMPLATE_LOG"))
            .or_else(|| env_nonempty("CONSUL_TEMPLATE_LOG_LEVEL"))
            .unwrap_or_else(|| "warn".to_string());
        let log_level = normalize_log_level(&log_level).map_err(err)?;
        let signal = |key: &str,
                      v: Option<String>,
                      default: Signal|
         -> Result<Option<Signal>, ConfigError> {
            match v {
                None => Ok(Some(default)),
                Some(v) => parse_signal(&v).map_err(|e| err(format!("{key}: {e}"))),
            }
        };
        Ok(Config {
            consul,
            templates,
            exec,
            wait,
            max_stale: dur("max_stale", max_stale, DEFAULT_MAX_STALE)?,
            block_query_wait: dur(
                "block_query_wait",
                block_query_wait,
                DEFAULT_BLOCK_QUERY_WAIT,
            )?,
            log_level,
            pid_file: pid_file.filter(|p| !p.is_empty()).map(PathBuf::from),
            kill_signal: signal("kill_signal", kill_signal, Signal::SIGINT)?,
            reload_signal: signal("reload_signal", reload_signal, Signal::SIGHUP)?,
            once: once.unwrap_or(false),
            dry,
            parse_only: parse_only.unwrap_or(false),
            syslog: syslog.and_then(|s| s.enabled).unwrap_or(false),
            template_error_fatal,
        })
    }
}

impl ExecLayer {
    fn merge(&mut self, e: ExecLayer) {
        pick(&mut self.command, e.command);
        pick(&mut self.enabled, e.enabled);
        pick(&mut self.timeout, e.timeout);
        pick(&mut self.kill_signal, e.kill_signal);
        pick(&mut self.kill_timeout, e.kill_timeout);
        pick(&mut self.reload_signal, e.reload_signal);
        pick(&mut self.splay, e.splay);
    }
}

fn wait_layer(w: WaitLayer) -> Result<Wait, String> {
    match w {
        WaitLayer::Text(t) => Wait::parse(&t),
        WaitLayer::Block { min, max } => {
            let min = parse_duration(min.as_deref().unwrap_or("0s"))?;
            let max = match max {
                Some(m) => parse_duration(&m)?,
                None => min * 4,
            };
            Wait::new(min, max)
        }
    }
}

fn exec_config(e: ExecLayer) -> Result<Option<ExecConfig>, String> {
    let command = e.command.map(CommandLayer::into_vec).unwrap_or_default();
    if command.is_empty() {
        return Ok(None);
    }
    let kill_signal = match e.kill_signal {
        None => Signal::SIGINT,
        Some(s) => parse_signal(&s)
            .map_err(|m| format!("kill_signal: {m}"))?
            .unwrap_or(Signal::SIGINT),
    };
    let reload_signal = match e.reload_signal {
        None => None,
        Some(s) => parse_signal(&s).map_err(|m| format!("reload_signal: {m}"))?,
    };
    let d = |key: &str, v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(v) => parse_duration(&v).map_err(|m| format!("{key}: {m}")),
    };
    Ok(Some(ExecConfig {
        command,
        kill_signal,
        kill_timeout: d("kill_timeout", e.kill_timeout, DEFAULT_KILL_TIMEOUT)?,
        reload_signal,
        splay: d("splay", e.splay, Duration::ZERO)?,
    }))
}

fn template_config(
    t: TemplateLayer,
    delims: &DelimitersLayer,
    global_check: Option<&str>,
) -> Result<TemplateConfig, String> {
    let TemplateLayer {
        source,
        contents,
        destination,
        command,
        command_timeout,
        exec,
        perms,
        backup,
        left_delimiter,
        right_delimiter,
        wait,
        error_on_missing_key,
        error_fatal,
        create_dest_dirs,
        engine,
        check_command,
    } = t;
    let source = source.filter(|s| !s.is_empty());
    let contents = contents.filter(|s| !s.is_empty());
    match (&source, &contents) {
        (Some(_), Some(_)) => return Err("only one of source or contents may be set".into()),
        (None, None) => return Err("one of source or contents must be set".into()),
        _ => {}
    }
    let mut command = command.map(CommandLayer::into_vec).unwrap_or_default();
    let mut timeout = match command_timeout {
        Some(t) => parse_duration(&t).map_err(|e| format!("command_timeout: {e}"))?,
        None => DEFAULT_COMMAND_TIMEOUT,
    };
    if let Some(e) = exec {
        if let Some(c) = e.command {
            command = c.into_vec();
        }
        if let Some(t) = e.timeout {
            timeout = parse_duration(&t).map_err(|e| format!("exec.timeout: {e}"))?;
        }
    }
    let perms = match perms {
        None => None,
        Some(PermsLayer::Number(0)) => None,
        Some(PermsLayer::Number(n)) => Some(n),
        Some(PermsLayer::Text(s)) => {
            let n = u32::from_str_radix(s.trim(), 8)
                .map_err(|_| format!("perms: invalid mode {s:?}"))?;
            (n != 0).then_some(n)
        }
    };
    if perms.is_some_and(|p| p > 0o7777) {
        return Err("perms: mode out of range".into());
    }
    let dialect = match engine.as_deref() {
        None | Some("") => Dialect::from_path(source.as_deref().unwrap_or("")),
        Some("go") | Some("gotemplate") => Dialect::Go,
        Some("handlebars") | Some("hbs") => Dialect::Handlebars,
        Some(other) => return Err(format!("engine: unknown {other:?} (go or handlebars)")),
    };
    let wait = wait.map(wait_layer).transpose()?;
    let check_command = check_command
        .or_else(|| global_check.map(str::to_string))
        .filter(|c| !c.trim().is_empty());
    Ok(TemplateConfig {
        source: source.map(PathBuf::from),
        contents,
        destination: destination.filter(|d| !d.is_empty()).map(PathBuf::from),
        command,
        command_timeout: timeout,
        perms,
        backup: backup.unwrap_or(false),
        left_delimiter: left_delimiter
            .or_else(|| delims.left.clone())
            .unwrap_or_default(),
        right_delimiter: right_delimiter
            .or_else(|| delims.right.clone())
            .unwrap_or_default(),
        wait,
        error_on_missing_key: error_on_missing_key.unwrap_or(false),
        create_dest_dirs: create_dest_dirs.unwrap_or(true),
        error_fatal: error_fatal.unwrap_or(true),
        dialect,
        check_command,
    })
}

// ---------------------------------------------------------------------------
// Values

/// Go's `time.ParseDuration` (`300ms`, `1.5s`, `1h30m`, `0`); negative values
/// are rejected, since no setting here means anything with them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().starts_with('-') {
        return Err(format!("negative duration {text:?}"));
    }
    registry_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// A signal name as upstream spells it (`SIGHUP`, any case, `SIG` required);
/// `""` and `SIGNULL` mean "disabled" (`None`).
pub fn parse_signal(text: &str) -> Result<Option<Signal>, String> {
    let upper = text.trim().to_ascii_uppercase();
    if upper.is_empty() || upper == "SIGNULL" {
        return Ok(None);
    }
    if !upper.starts_with("SIG") {
        return Err(format!("unknown signal {text:?} (names start with SIG)"));
    }
    let sig = match upper.as_str() {
        "SIGIOT" => Signal::SIGABRT,
        other => other
            .parse::<Signal>()
            .map_err(|_| format!("unknown signal {text:?}"))?,
    };
    Ok(Some(sig))
}

/// `trace`, `debug`, `info`, `warn`, `err`/`error` (any case) → lower case.
pub fn normalize_log_level(text: &str) -> Result<String, String> {
    let l = text.trim().to_ascii_lowercase();
    Ok(match l.as_str() {
        "trace" | "debug" | "info" => l,
        "warn" | "warning" => "warn".into(),
        "err" | "error" => "error".into(),
        _ => {
            return Err(format!(
                "invalid log level {text:?} (trace, debug, info, warn, err)"
            ));
        }
    })
}

// ---------------------------------------------------------------------------
// Files

/// Config file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HCL.
    Hcl,
    /// JSON.
    Json,
}

/// Parses one config text. Repeated blocks become lists; HCL `perms = 0644`
/// keeps its octal meaning (HCL 1 reads a leading 0 as octal, hcl-rs does not).
pub fn parse_text(name: &str, text: &str, format: Format) -> Result<ConfigLayer, ConfigError> {
    let mut value: Value = match format {
        Format::Json => {
            serde_json::from_str(text).map_err(|e| ConfigError::new(name, e.to_string()))?
        }
        Format::Hcl => {
            let mut v: Value =
                hcl::from_str(text).map_err(|e| ConfigError::new(name, e.to_string()))?;
            octal_perms(&mut v);
            v
        }
    };
    normalize(&mut value);
    serde_json::from_value(value).map_err(|e| ConfigError::new(name, e.to_string()))
}

/// Rewrites `perms` numbers of HCL template blocks from their decimal reading
/// (`0644` → 644) to octal (420), when the digits are octal digits.
fn octal_perms(v: &mut Value) {
    let Some(t) = v.get_mut("template") else {
        return;
    };
    let items: Vec<&mut Value> = match t {
        Value::Array(a) => a.iter_mut().collect(),
        other => vec![other],
    };
    for item in items {
        if let Some(p) = item.get_mut("perms")
            && let Some(n) = p.as_u64()
        {
            let digits = n.to_string();
            if let Ok(oct) = u32::from_str_radix(&digits, 8) {
                *p = Value::from(oct);
            }
        }
    }
}

/// Single blocks given several times (an array) are merged into one object;
/// a single `template` block becomes a one-element list.
fn normalize(v: &mut Value) {
    let Value::Object(map) = v else { return };
    for key in ["consul", "exec", "syslog", "default_delimiters"] {
        if let Some(slot) = map.get_mut(key) {
            merge_blocks(slot);
            if let Value::Object(inner) = slot {
                for k in ["auth", "retry"] {
                    if let Some(s) = inner.get_mut(k) {
                        merge_blocks(s);
                    }
                }
            }
        }
    }
    if let Some(w) = map.get_mut("wait") {
        merge_blocks(w);
    }
    if let Some(t) = map.get_mut("template") {
        if t.is_object() {
            *t = Value::Array(vec![t.take()]);
        }
        if let Value::Array(list) = t {
            for item in list {
                if let Value::Object(m) = item {
                    for k in ["wait", "exec"] {
                        if let Some(s) = m.get_mut(k) {
                            merge_blocks(s);
                        }
                    }
                }
            }
        }
    }
}

fn merge_blocks(v: &mut Value) {
    if let Value::Array(list) = v
        && list.iter().all(Value::is_object)
    {
        let mut merged = serde_json::Map::new();
        for item in list.drain(..) {
            if let Value::Object(m) = item {
                merged.extend(m);
            }
        }
        *v = Value::Object(merged);
    }
}

/// Reads `-config` paths in order: a file, or a directory walked recursively
/// in lexical order (symlinks not followed). `.json` files are JSON, anything
/// else HCL.
pub fn load_paths(paths: &[PathBuf]) -> Result<ConfigLayer, ConfigError> {
    let mut layer = ConfigLayer::default();
    for path in paths {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        for file in files {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| ConfigError::new(&name, e.to_string()))?;
            let format = if file.extension().is_some_and(|e| e == "json") {
                Format::Json
            } else {
                Format::Hcl
            };
            layer.merge(parse_text(&name, &text, format)?);
        }
    }
    Ok(layer)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let name = path.display().to_string();
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| ConfigError::new(&name, e.to_string()))?;
    if meta.file_type().is_symlink() && out.is_empty() && !path.is_dir() {
        // A symlink given directly is followed; inside directories it is not.
        out.push(path.to_path_buf());
        return Ok(());
    }
    if path.is_dir() && !meta.file_type().is_symlink() || meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| ConfigError::new(&name, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let m = std::fs::symlink_metadata(&e)
                .map_err(|err| ConfigError::new(&name, err.to_string()))?;
            if m.file_type().is_symlink() {
                continue;
            }
            if m.is_dir() {
                collect_files(&e, out)?;
            } else {
                out.push(e);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Environment variables set for commands and the exec child (upstream B.4.5).
pub fn command_env(consul: &ConsulConfig) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("CONSUL_HTTP_ADDR".to_string(), consul.address.clone());
    if !consul.token.is_empty() {
        env.insert("CONSUL_HTTP_TOKEN".to_string(), consul.token.clone());
    }
    if let Some(auth) = &consul.auth {
        env.insert("CONSUL_HTTP_AUTH".to_string(), auth.clone());
    }
    env
}

#[cfg(test)]
mod tests;
