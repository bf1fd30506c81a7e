//! `registry-node validate [-quiet] [-config-format=json|hcl] PATH...`: checks
//! config files and directories exactly as the agent would load them.

use std::path::PathBuf;

use clap::ArgAction;

use crate::cli::goflags::parse_bool;
use crate::config::{self, ConfigFormat};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Print nothing when the configuration is valid.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set, value_parser = parse_bool, value_name = "BOOL")]
    pub quiet: bool,
    /// Format of files regardless of their extension.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub config_format: Option<ConfigFormat>,
    /// Config files or directories (directories: *.json and *.hcl, in lexical order).
    #[arg(required = true, value_name = "FILE_OR_DIRECTORY")]
    pub paths: Vec<PathBuf>,
}

/// Runs `validate`: exit 0 when valid, 1 (with the error on stderr) otherwise.
pub async fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    match config::check_paths(&args.paths, args.config_format) {
        Ok((_config, warnings)) => {
            if !args.quiet {
                for warning in warnings {
                    eprintln!("WARNING: {warning}");
                }
                println!("Configuration is valid!");
            }
            Ok(0)
        }
        Err(err) => {
            eprintln!("Config validation failed: {err}");
            Ok(1)
        }
    }
}
