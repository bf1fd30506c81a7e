//! One module per subcommand. Every subcommand except `agent` and `validate` is a
//! thin client of the HTTP API through `registry_api::client`.

pub mod agent;
pub mod catalog;
pub mod event;
pub mod force_leave;
pub mod http_flags;
pub mod info;
pub mod join;
pub mod keygen;
pub mod keyring;
pub mod kv;
pub mod leave;
pub mod lock;
pub mod maint;
pub mod members;
pub mod operator;
pub mod output;
pub mod reload;
pub mod services;
pub mod validate;
pub mod version;
pub mod watch;

use crate::cli::Command;

/// Runs a parsed command and returns the process exit code.
pub async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Agent(args) => agent::run(*args).await,
        Command::Members(args) => members::run(args).await,
        Command::Info(args) => info::run(args).await,
        Command::Join(args) => join::run(args).await,
        Command::Leave(args) => leave::run(args).await,
        Command::Kv(args) => kv::run(args).await,
        Command::Catalog(args) => catalog::run(args).await,
        Command::Services(args) => services::run(args).await,
        Command::Reload(args) => reload::run(args).await,
        Command::Version(args) => version::run(args).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Lock(args) => lock::run(args).await,
        Command::Event(args) => event::run(args).await,
        Command::Maint(args) => maint::run(args).await,
        Command::ForceLeave(args) => force_leave::run(args).await,
        Command::Keygen(args) => keygen::run(args).await,
        Command::Keyring(args) => keyring::run(args).await,
        Command::Operator(args) => operator::run(args).await,
    }
}
