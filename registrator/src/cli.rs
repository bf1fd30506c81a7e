//! Command line: upstream registrator's Go flags, its start-up checks and the
//! registry URI, turned into a validated [`Config`].
//!
//! [`parse`] is pure (no logging, no exit): `main` prints the [`UsageError`] and exits
//! with [`UsageError::exit_code`]. Upstream exits 2 on usage errors but 1 on the
//! `log.Fatal` start-up checks (`-ttl`, `-retry-interval`, `-deregister`, the adapter
//! URI); every one of them exits 2 here, being a mistake on the command line.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use clap::Parser;

use crate::backend::RegistryUri;
use crate::tags::{TagsError, TagsTemplate};

/// Upstream's usage text (Go `flag.PrintDefaults` layout), printed with usage errors.
pub const USAGE: &str = "\
Usage of registrator:
  registrator [options] <registry URI>

  -cleanup
    \tRemove dangling services
  -deregister string
    \tDeregister exited services \"always\" or \"on-success\" (default \"always\")
  -explicit
    \tOnly register containers which have SERVICE_NAME label set
  -internal
    \tUse internal ports instead of published ones
  -ip string
    \tIP for ports mapped to the host
  -resync int
    \tFrequency with which services are resynchronized
  -retry-attempts int
    \tMax retry attempts to establish a connection with the backend. Use -1 for infinite retries
  -retry-interval int
    \tInterval (in millisecond) between retry-attempts. (default 2000)
  -tags string
    \tAppend tags for all registered services (supports Go template)
  -ttl int
    \tTTL for services (default is no expiry)
  -ttl-refresh int
    \tFrequency with which service TTLs are refreshed
  -useIpFromLabel string
    \tUse IP which is stored in a label assigned to the container
  -version
    \tPrint the version and exit
";

/// Validated command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where services are registered (`registry.raw` is the argument as given).
    pub registry: RegistryUri,
    /// `-ip`: address used for host-published ports instead of the resolved hostname.
    pub host_ip: Option<String>,
    /// `-internal`: register container IP + exposed port.
    pub internal: bool,
    /// `-explicit`: only ports with a `SERVICE_NAME` / `SERVICE_<port>_NAME`.
    pub explicit: bool,
    /// `-useIpFromLabel`: label holding the service IP (`/prefix` stripped).
    pub use_ip_from_label: Option<String>,
    /// `-tags`, parsed once here so a template syntax error stops start-up.
    pub tags: TagsTemplate,
    /// `-ttl`: registry TTL of each service; zero means none (etcd only).
    pub ttl: Duration,
    /// `-ttl-refresh`: how often TTLs are re-written. Set exactly when `ttl` is.
    pub ttl_refresh: Option<Duration>,
    /// `-resync`: period of the full re-registration; `None` = never.
    pub resync: Option<Duration>,
    /// `-deregister`.
    pub deregister: Deregister,
    /// `-retry-attempts`: extra backend pings at start-up.
    pub retry_attempts: RetryAttempts,
    /// `-retry-interval`: pause between those pings (always > 0).
    pub retry_interval: Duration,
    /// `-cleanup`: remove dangling services during each sync.
    pub cleanup: bool,
}

/// `-deregister`: what to do with a container's services when it dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deregister {
    /// Always deregister (default).
    #[default]
    Always,
    /// Only after exit code 0 or a signal (code & 128); failed containers stay visible.
    OnSuccess,
}

/// `-retry-attempts`: `-1` retries forever; `n >= 0` pings `n + 1` times in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAttempts {
    /// `-1`.
    Forever,
    /// Extra attempts after the first.
    Extra(u32),
}

impl RetryAttempts {
    /// Whether attempt number `attempt` (0-based) may still run.
    pub fn allows(self, attempt: u32) -> bool {
        match self {
            RetryAttempts::Forever => true,
            RetryAttempts::Extra(n) => attempt <= n,
        }
    }
}

/// Why [`parse`] did not produce a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// `-h`/`-help`: print [`USAGE`], exit 0.
    Help,
    /// `--version`/`-version`: print the version, exit 0.
    Version,
    /// A bad command line: print `message` (then [`USAGE`] when `show_usage`), exit 2.
    Invalid {
        /// One or more lines, without trailing newline.
        message: String,
        /// Whether upstream follows the message with the usage text.
        show_usage: bool,
    },
}

impl UsageError {
    fn invalid(message: impl Into<String>) -> Self {
        UsageError::Invalid {
            message: message.into(),
            show_usage: false,
        }
    }

    fn with_usage(message: impl Into<String>) -> Self {
        UsageError::Invalid {
            message: message.into(),
            show_usage: true,
        }
    }

    /// Process exit code: 0 for help and version, 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            UsageError::Help | UsageError::Version => 0,
            UsageError::Invalid { .. } => 2,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Help => f.write_str(USAGE),
            UsageError::Version => f.write_str(env!("CARGO_PKG_VERSION")),
            UsageError::Invalid {
                message,
                show_usage,
            } => {
                f.write_str(message)?;
                if *show_usage {
                    write!(f, "\n\n{USAGE}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for UsageError {}

impl From<TagsError> for UsageError {
    fn from(e: TagsError) -> Self {
        UsageError::invalid(e.to_string())
    }
}

/// Raw flags, names exactly as upstream's. Booleans take a value only as `-flag=value`.
#[derive(Debug, Parser)]
#[command(
    name = "registrator",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Args {
    #[arg(long = "ip", default_value = "")]
    ip: String,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = go_bool)]
    internal: bool,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = go_bool)]
    explicit: bool,
    #[arg(long = "useIpFromLabel", default_value = "")]
    use_ip_from_label: String,
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    tags: String,
    #[arg(long, default_value = "0", value_parser = go_int, allow_negative_numbers = true)]
    ttl: i64,
    #[arg(long = "ttl-refresh", default_value = "0", value_parser = go_int,
          allow_negative_numbers = true)]
    ttl_refresh: i64,
    #[arg(long, default_value = "0", value_parser = go_int, allow_negative_numbers = true)]
    resync: i64,
    #[arg(long, default_value = "always")]
    deregister: String,
    #[arg(long = "retry-attempts", default_value = "0", value_parser = go_int,
          allow_negative_numbers = true)]
    retry_attempts: i64,
    #[arg(long = "retry-interval", default_value = "2000", value_parser = go_int,
          allow_negative_numbers = true)]
    retry_interval: i64,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = go_bool)]
    cleanup: bool,
    #[arg(long, action = clap::ArgAction::SetTrue)]
    version: bool,
    #[arg(long, short = 'h', action = clap::ArgAction::SetTrue)]
    help: bool,
    /// Go's flag parsing stops at the first positional argument: everything from there
    /// on is an argument, even `-internal`.
    #[arg(trailing_var_arg = true, num_args = 0..)]
    args: Vec<String>,
}

fn go_bool(text: &str) -> Result<bool, String> {
    goflags::parse_bool(text)
}

/// Go's `strconv.ParseInt(s, 0, 64)` as used by `flag.Int`: `0x`, `0o`, `0b`, leading-`0`
/// octal and `_` separators.
fn go_int(text: &str) -> Result<i64, String> {
    let err = || "parse error".to_string();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return Err(err());
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    let value = i64::from_str_radix(&digits, radix).map_err(|_| err())?;
    Ok(if negative { -value } else { value })
}

/// Flags that take a value, which Go reads from the next argument when no `=` is given.
const VALUE_FLAGS: &[&str] = &[
    "ip",
    "useIpFromLabel",
    "tags",
    "ttl",
    "ttl-refresh",
    "resync",
    "deregister",
    "retry-attempts",
    "retry-interval",
];

/// [`goflags::normalize`], except that a flag's separate value is never rewritten:
/// Go reads `-tags -x` as the tags `-x`, not as a flag `-x`.
fn normalize(argv: Vec<OsString>) -> Vec<OsString> {
    let mut normalized = goflags::normalize(argv.clone());
    let mut takes_value = false;
    for (at, arg) in argv.into_iter().enumerate().skip(1) {
        if takes_value {
            normalized[at] = arg;
            takes_value = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        let Some(name) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            // The first positional argument ends the flags.
            break;
        };
        takes_value = !name.contains('=') && VALUE_FLAGS.contains(&name);
    }
    normalized
}

/// Parses and validates `argv` (program name first), in upstream's order: flags,
/// positional count, `-ttl`/`-ttl-refresh`, `-retry-interval`, `-deregister`, URI;
/// then our own checks (`-tags` syntax, negative durations).
pub fn parse(argv: Vec<OsString>) -> Result<Config, UsageError> {
    let original: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args = Args::try_parse_from(normalize(argv)).map_err(|e| {
        let line = goflags::describe_error(&e).unwrap_or_else(|| e.to_string());
        UsageError::with_usage(line)
    })?;
    if args.help {
        return Err(UsageError::Help);
    }
    if args.version {
        return Err(UsageError::Version);
    }
    match args.args.len() {
        0 => {
            return Err(UsageError::with_usage(
                "Missing required argument for registry URI.",
            ));
        }
        1 => {}
        n => {
            // The positional tail is the end of argv; show it as typed, not normalised.
            let extra = original[original.len() - n + 1..].join(" ");
            return Err(UsageError::with_usage(format!(
                "Extra unparsed arguments:\n  {extra}\nOptions should come before the registry URI argument."
            )));
        }
    }

    let (ttl, refresh) = (args.ttl, args.ttl_refresh);
    if (ttl == 0 && refresh > 0) || (ttl > 0 && refresh == 0) {
        return Err(UsageError::invalid(
            "-ttl and -ttl-refresh must be specified together or not at all",
        ));
    } else if ttl > 0 && ttl <= refresh {
        return Err(UsageError::invalid(
            "-ttl must be greater than -ttl-refresh",
        ));
    }
    if ttl < 0 || refresh < 0 {
        return Err(UsageError::invalid(
            "-ttl and -ttl-refresh must not be negative",
        ));
    }
    if args.retry_interval <= 0 {
        return Err(UsageError::invalid(
            "-retry-interval must be greater than 0",
        ));
    }
    let deregister = match args.deregister.as_str() {
        "always" => Deregister::Always,
        "on-success" => Deregister::OnSuccess,
        _ => {
            return Err(UsageError::invalid(
                "-deregister must be \"always\" or \"on-success\"",
            ));
        }
    };
    let registry =
        RegistryUri::parse(&args.args[0]).map_err(|e| UsageError::invalid(e.to_string()))?;
    let retry_attempts = match args.retry_attempts {
        -1 => RetryAttempts::Forever,
        n => RetryAttempts::Extra(u32::try_from(n).map_err(|_| {
            UsageError::invalid("-retry-attempts must be -1 (forever) or at least 0")
        })?),
    };
    let tags = TagsTemplate::parse(&args.tags)?;
    let secs = |n: i64| Duration::from_secs(n.max(0) as u64);
    let non_empty = |s: String| (!s.is_empty()).then_some(s);

    Ok(Config {
        registry,
        host_ip: non_empty(args.ip),
        internal: args.internal,
        explicit: args.explicit,
        use_ip_from_label: non_empty(args.use_ip_from_label),
        tags,
        ttl: secs(ttl),
        ttl_refresh: (refresh > 0).then(|| secs(refresh)),
        resync: (args.resync > 0).then(|| secs(args.resync)),
        deregister,
        retry_attempts,
        retry_interval: Duration::from_millis(args.retry_interval as u64),
        cleanup: args.cleanup,
    })
}

#[cfg(test)]
mod tests;
