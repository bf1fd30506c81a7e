//! `templater`: normalise Go-style flags, parse them, load the config, set
//! up logging, run, map the outcome to upstream's exit codes
//! (13 flags, 15 config, 14 runner, 12 interrupted).

use clap::Parser as _;
use templater::app::{self, EXIT_CONFIG_ERROR, Loader};
use templater::cli::{Cli, EXIT_FLAG_ERROR};
use tracing_subscriber::EnvFilter;

fn main() {
    let argv = goflags::normalize(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => match goflags::describe_error(&e) {
            None => {
                // -h: usage on stdout, exit 0 (as Go's flag package).
                let _ = e.print();
                std::process::exit(0);
            }
            Some(msg) => {
                eprintln!("templater: {msg}");
                std::process::exit(EXIT_FLAG_ERROR);
            }
        },
    };
    if cli.version {
        println!(
            "templater v{} (consul-template compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    let layer = match cli.to_layer() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("templater: {e}");
            std::process::exit(EXIT_FLAG_ERROR);
        }
    };
    let loader = Loader {
        paths: cli.config.clone(),
        cli: layer,
    };
    let config = match loader.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("templater: config: {e}");
            std::process::exit(EXIT_CONFIG_ERROR);
        }
    };
    let filter = EnvFilter::builder()
        .with_default_directive(
            config
                .log_level
                .parse()
                .unwrap_or(tracing::Level::WARN.into()),
        )
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(app::run(loader, config));
    // Views may still hold connections; do not wait for them.
    rt.shutdown_background();
    std::process::exit(code);
}
