//! Command line: Go-style flags normalised by [`goflags`], then parsed with clap.
//! `registry-node agent ...` runs the agent; every other subcommand is an HTTP
//! client of a running agent (see `crate::command`).

pub use ::goflags;

use clap::{Parser, Subcommand};

use crate::command;
use crate::config::AgentArgs;

/// `registry-node` command line.
#[derive(Debug, Parser)]
#[command(
    name = "registry-node",
    version,
    about = "Consul-compatible service registry",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands, named as Consul's.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent (server or client).
    Agent(Box<AgentArgs>),
    /// List the members of the cluster.
    Members(command::members::MembersArgs),
    /// Show debugging information about the agent.
    Info(command::info::InfoArgs),
    /// Tell the agent to join a cluster.
    Join(command::join::JoinArgs),
    /// Gracefully leave the cluster and shut the agent down.
    Leave(command::leave::LeaveArgs),
    /// Interact with the key-value store.
    Kv(command::kv::KvArgs),
    /// Interact with the catalog.
    Catalog(command::catalog::CatalogArgs),
    /// Register or deregister services with the local agent.
    Services(command::services::ServicesArgs),
    /// Trigger a reload of the agent's configuration files.
    Reload(command::reload::ReloadArgs),
    /// Print the version.
    Version(command::version::VersionArgs),
    /// Validate configuration files.
    Validate(command::validate::ValidateArgs),
    /// Watch for changes in a data view and run a handler.
    Watch(command::watch::WatchArgs),
    /// Run a command holding a lock (or a semaphore slot).
    Lock(command::lock::LockArgs),
    /// Fire a user event.
    Event(command::event::EventArgs),
    /// Control node or service maintenance mode.
    Maint(command::maint::MaintArgs),
    /// Force a member of the cluster to enter the "left" state.
    ForceLeave(command::force_leave::ForceLeaveArgs),
    /// Generate a new gossip encryption key.
    Keygen(command::keygen::KeygenArgs),
    /// Manage gossip layer encryption keys.
    Keyring(command::keyring::KeyringArgs),
    /// Provide cluster-level tools for operators (Raft peers).
    Operator(command::operator::OperatorArgs),
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::{Cli, goflags};

    /// Parses like `main` and returns the one-line error.
    fn error_line(args: &[&str]) -> Option<String> {
        use clap::Parser;
        let argv = std::iter::once("registry-node")
            .chain(args.iter().copied())
            .map(OsString::from);
        let err = Cli::try_parse_from(goflags::normalize(argv.collect())).unwrap_err();
        goflags::describe_error(&err)
    }

    #[test]
    fn clap_errors_become_one_go_style_line() {
        let cases: &[(&[&str], &str)] = &[
            (&["agent", "-foo"], "error: unknown flag: -foo"),
            (&["agent", "-foo=bar"], "error: unknown flag: -foo"),
            (
                &["agent", "-http-port=abc"],
                "error: invalid value \"abc\" for flag -http-port: invalid digit found in string",
            ),
            (
                &["agent", "-dns-port", "70000"],
                "error: invalid value \"70000\" for flag -dns-port: 70000 is not in -1..=65535",
            ),
            (
                &["agent", "-server=maybe"],
                "error: invalid value \"maybe\" for flag -server: parse error (expected true or false)",
            ),
            (
                &["agent", "-config-format=yaml"],
                "error: invalid value \"yaml\" for flag -config-format: must be one of json, hcl",
            ),
            (&["nosuchcommand"], "error: unknown command: nosuchcommand"),
        ];
        for (args, expected) in cases {
            assert_eq!(error_line(args).as_deref(), Some(*expected), "{args:?}");
        }
        assert_eq!(
            error_line(&["agent", "-h"]),
            None,
            "help is printed by clap"
        );
        assert_eq!(error_line(&["-version"]), None);
    }
}
