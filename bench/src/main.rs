//! `registry-bench` entry point: parse flags, run the scenarios, map the error
//! to an exit code. Everything else lives in the library (`lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use registry_bench::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("registry-bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(registry_bench::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
