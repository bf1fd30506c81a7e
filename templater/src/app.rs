//! The binary's body: signals, the pid file and the reload loop around the
//! [`Runner`]. `main` only parses flags, sets up logging and maps exit codes.

use std::path::PathBuf;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigError, ConfigLayer};
use crate::runner::{EXIT_RUNNER_ERROR, Exit, Runner, load_template};

/// Exit code of a configuration error (upstream).
pub const EXIT_CONFIG_ERROR: i32 = 15;

/// Loads the configuration: `-config` paths in order, then the command line.
#[derive(Debug, Clone)]
pub struct Loader {
    /// `-config` files and directories.
    pub paths: Vec<PathBuf>,
    /// The command line's layer (always on top).
    pub cli: ConfigLayer,
}

impl Loader {
    /// Reads every source and finalizes against the process environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut layer = config::load_paths(&self.paths)?;
        layer.merge(self.cli.clone());
        layer.finalize(&|k| std::env::var(k).ok())
    }
}

/// Signals we handle: reload/kill (configurable), SIGTERM, and the ones
/// forwarded to an exec child.
const TRAPPED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn trap_signals() -> mpsc::UnboundedReceiver<Signal> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in TRAPPED {
        match signal(SignalKind::from_raw(sig as i32)) {
            Ok(mut stream) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        if tx.send(sig).is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => warn!(signal = %sig, error = %e, "cannot trap signal"),
        }
    }
    rx
}

/// Raises the open-file soft limit to the hard one, as Go's runtime does for
/// consul-template: every watched dependency holds a connection.
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        warn!(soft, hard, error = %e, "cannot raise the open-file limit");
    }
}

/// Runs until exit; returns the process exit code.
pub async fn run(loader: Loader, mut config: Config) -> i32 {
    raise_nofile();
    if config.syslog {
        warn!("-syslog is not supported; logging to stderr");
    }
    if config.parse_only {
        for t in &config.templates {
            if let Err(e) = load_template(t) {
                error!(error = %e, "(cli) parse failed");
                return EXIT_RUNNER_ERROR;
            }
        }
        return 0;
    }
    info!("templater v{}", env!("CARGO_PKG_VERSION"));
    let mut signals = trap_signals();
    let pid_file = config.pid_file.clone();
    if let Some(p) = &pid_file
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        error!(path = %p.display(), error = %e, "cannot write the pid file");
        return EXIT_CONFIG_ERROR;
    }
    let reload = || loader.load();
    let code = loop {
        let runner = match Runner::new(config) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "(runner) cannot start");
                break EXIT_RUNNER_ERROR;
            }
        };
        match runner.run(&mut signals, &reload).await {
            Ok(Exit::Code(c)) => break c,
            Ok(Exit::Reload(c)) => {
                info!("(cli) reloaded configuration");
                config = *c;
            }
            Err(e) => {
                error!(error = %e, "(runner) fatal error");
                break EXIT_RUNNER_ERROR;
            }
        }
    };
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    code
}
