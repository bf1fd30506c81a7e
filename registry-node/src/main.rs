//! `registry-node`: normalise Go-style flags, parse, set up logging, run the
//! subcommand and turn its result into the exit code.

use std::process::ExitCode;

use clap::Parser;
use registry_node::cli::{Cli, Command, goflags};
use registry_node::config::logging::{self, LogSettings};

/// mimalloc: the agent allocates many short-lived buffers per request; glibc's
/// allocator showed up at ~15% of CPU in the blocking-query fan-out profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let argv = goflags::normalize(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(err) => {
            return match goflags::describe_error(&err) {
                // Help and version text: clap prints it (stdout) and we succeed.
                None if err.exit_code() == 0 => {
                    let _ = err.print();
                    ExitCode::SUCCESS
                }
                None => {
                    let _ = err.print();
                    ExitCode::FAILURE
                }
                Some(line) => {
                    eprintln!("{line}");
                    ExitCode::FAILURE
                }
            };
        }
    };

    let log_settings = match &cli.command {
        Command::Agent(args) => LogSettings::for_agent(args),
        _ => LogSettings::cli(),
    };
    if let Err(err) = logging::init(&log_settings) {
        eprintln!("{err}");
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(registry_node::command::run(cli.command)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
