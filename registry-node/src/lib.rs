//! Registry node: a Consul-compatible agent (server or client) and its CLI.
//!
//! # Layout
//! - [`cli`]: command line (Go-style flags) and [`command`]: one module per subcommand.
//! - [`config`]: agent configuration from flags, JSON and HCL files.
//! - [`state`]: the pure replicated state machine (KV, catalog, sessions).
//! - [`raft`]: openraft adaptors: durable log, state machine, network seam.
//! - [`watch`]: fine-grained notification of blocking queries.
//! - [`http`]: the Consul HTTP API v1.
//! - [`agent`]: wires the subsystems together and owns shutdown.
//! - [`checks`]: the health-check runner (HTTP, TCP, UDP, script, docker, alias).
//! - [`watches`]: blocking-query watches for the CLI and the agent's `watches`.
//! - [`filter`]: `?filter=` expressions.
//! - [`rpc`]: framed-TCP server RPC (Raft messages, write forwarding, read index).
//! - [`gossip`]: SWIM membership (foca) with Consul's tags, events and encryption;
//!   not yet wired into the agent.

pub mod agent;
pub mod checks;
pub mod cli;
pub mod command;
pub mod config;
pub mod dns;
pub mod filter;
pub mod gossip;
pub mod http;
pub mod raft;
pub mod rpc;
pub mod state;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod watch;
pub mod watches;
