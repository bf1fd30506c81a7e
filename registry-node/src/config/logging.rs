//! The binary's tracing subscriber: `-log-level` sets the default directive and
//! `RUST_LOG` overrides it; `-log-json` switches to JSON lines; `-log-file` adds a
//! copy of the log in a file named like Consul's (`<prefix>-<unix-nanos>.log`).
//!
//! Only `main` calls [`init`]; libraries and tests never install a global subscriber.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

use super::{AgentArgs, Config};

/// Errors of setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `-log-file` could not be opened.
    #[error("Error opening log file {path}: {source}")]
    OpenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A global subscriber is already installed.
    #[error("logging is already initialised: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// What to log, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Consul level name (`info`, `DEBUG`, `err`...).
    pub level: String,
    /// JSON lines instead of text.
    pub json: bool,
    /// `-log-file` prefix, if any.
    pub file: Option<String>,
}

impl LogSettings {
    /// Client subcommands: warnings only, so command output stays clean.
    pub fn cli() -> LogSettings {
        LogSettings {
            level: "warn".to_string(),
            json: false,
            file: None,
        }
    }

    /// The agent's settings, from its files and flags. A broken configuration
    /// falls back to the flags alone; the agent reports the error itself.
    pub fn for_agent(args: &AgentArgs) -> LogSettings {
        let loaded = args
            .sources(&mut Vec::new())
            .and_then(|sources| Config::from_sources(sources, args.is_dev()));
        match loaded {
            Ok(config) => LogSettings::from_config(&config),
            Err(_) => LogSettings {
                level: args.log_level.clone().unwrap_or_else(|| {
                    if args.is_dev() {
                        "DEBUG".to_string()
                    } else {
                        "INFO".to_string()
                    }
                }),
                json: args.log_json.unwrap_or(false),
                file: args.log_file.clone(),
            },
        }
    }

    /// Settings of a loaded configuration.
    pub fn from_config(config: &Config) -> LogSettings {
        LogSettings {
            level: config.log_level.clone(),
            json: config.log_json,
            file: (!config.log_file.is_empty()).then(|| config.log_file.clone()),
        }
    }
}

/// Maps a Consul level name to a tracing level (`err` is Consul's `error`).
pub fn parse_level(text: &str) -> Option<LevelFilter> {
    match text.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "err" | "error" => Some(LevelFilter::ERROR),
        "off" => Some(LevelFilter::OFF),
        _ => None,
    }
}

/// Dependencies whose debug output would drown ours; capped at `info` unless the
/// level is `trace`.
const NOISY: &[&str] = &[
    "openraft",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "tower",
    "mio",
    "hickory_proto",
    "hickory_server",
    "rustls",
];

/// The filter directives for a level, before `RUST_LOG` is considered.
pub fn directives(level: LevelFilter) -> String {
    let mut out = level.to_string().to_lowercase();
    if level == LevelFilter::DEBUG {
        for target in NOISY {
            out.push_str(&format!(",{target}=info"));
        }
    }
    // openraft narrates every state change at info; our own raft logs say what matters.
    if level == LevelFilter::INFO {
        out.push_str(",openraft=warn");
    }
    out
}

/// `RUST_LOG` when set, else the directives of `level`.
pub fn env_filter(level: LevelFilter) -> EnvFilter {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(env) if !env.trim().is_empty() => EnvFilter::builder().parse_lossy(env),
        _ => EnvFilter::builder().parse_lossy(directives(level)),
    }
}

/// Consul's log file name: `<prefix>-<unix nanos><ext>`; a directory (ending in
/// `/`) gets `consul-<unix nanos>.log`; a name without extension gets `.log`.
pub fn log_file_path(prefix: &str, now: SystemTime) -> PathBuf {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let (dir, name) = if prefix.ends_with('/') || prefix.is_empty() {
        (Path::new(prefix), "consul.log")
    } else {
        let path = Path::new(prefix);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("consul.log");
        (path.parent().unwrap_or(Path::new("")), name)
    };
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ".log"),
    };
    dir.join(format!("{stem}-{nanos}{ext}"))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber: stderr, plus the log file when one is set.
/// Returns the path of the log file it opened.
pub fn init(settings: &LogSettings) -> Result<Option<PathBuf>, LoggingError> {
    let level = parse_level(&settings.level).unwrap_or(LevelFilter::INFO);
    let mut layers: Vec<BoxedLayer> = Vec::new();
    let stderr = fmt::layer().with_writer(std::io::stderr);
    layers.push(if settings.json {
        stderr.json().boxed()
    } else {
        stderr.with_ansi(std::io::stderr().is_terminal()).boxed()
    });
    let mut opened = None;
    if let Some(prefix) = &settings.file {
        let path = log_file_path(prefix, SystemTime::now());
        let file = open_log_file(&path)?;
        let writer = fmt::layer().with_writer(Mutex::new(file)).with_ansi(false);
        layers.push(if settings.json {
            writer.json().boxed()
        } else {
            writer.boxed()
        });
        opened = Some(path);
    }
    tracing_subscriber::registry()
        .with(layers)
        .with(env_filter(level))
        .try_init()?;
    Ok(opened)
}

fn open_log_file(path: &Path) -> Result<File, LoggingError> {
    let error = |source| LoggingError::OpenFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn levels_accept_consul_names() {
        assert_eq!(parse_level("INFO"), Some(LevelFilter::INFO));
        assert_eq!(parse_level("err"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("Warn"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("loud"), None);
        assert!(directives(LevelFilter::DEBUG).starts_with("debug,openraft=info"));
        assert_eq!(directives(LevelFilter::TRACE), "trace");
    }

    #[test]
    fn log_file_names_follow_consul() {
        let t = UNIX_EPOCH + Duration::from_nanos(42);
        assert_eq!(
            log_file_path("/var/log/consul.log", t),
            PathBuf::from("/var/log/consul-42.log")
        );
        assert_eq!(
            log_file_path("/var/log/", t),
            PathBuf::from("/var/log/consul-42.log")
        );
        assert_eq!(
            log_file_path("/l/consul_log-x", t),
            PathBuf::from("/l/consul_log-x-42.log")
        );
        assert_eq!(log_file_path("agent.log", t), PathBuf::from("agent-42.log"));
    }
}
