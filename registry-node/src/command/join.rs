//! `registry-node join`: ask the agent to join a gossip pool through one or more
//! existing members (`PUT /v1/agent/join/:address`).

use super::http_flags::{HttpFlags, parse_bool};
use super::output::fail;

/// Arguments of `join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// Joins a server to another server in the WAN pool.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub wan: bool,

    /// Addresses of existing members (`ip[:port]`).
    #[arg(value_name = "address")]
    pub addresses: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `join`: succeeds when at least one address could be joined.
pub async fn run(args: JoinArgs) -> anyhow::Result<i32> {
    if args.addresses.is_empty() {
        return Ok(fail("At least one address to join must be specified."));
    }
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    let mut joined = 0;
    for addr in &args.addresses {
        match client.agent_join(addr, args.wan).await {
            Ok(()) => joined += 1,
            // An unreachable agent fails every address the same way: say it once.
            Err(e) if e.is_connection_error() => return Ok(fail(e.to_string())),
            Err(e) => {
                eprintln!("Error joining address '{addr}': {e}");
            }
        }
    }
    if joined == 0 {
        return Ok(fail("Failed to join any nodes."));
    }
    println!("Successfully joined cluster by contacting {joined} nodes.");
    Ok(0)
}
