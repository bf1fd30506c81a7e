//! `registry-node leave`: graceful leave and shutdown of the agent (`PUT /v1/agent/leave`).

use super::http_flags::HttpFlags;
use super::output::{fail, fail_client};

/// Arguments of `leave`.
#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `leave`.
pub async fn run(args: LeaveArgs) -> anyhow::Result<i32> {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.agent_leave().await {
        return Ok(fail_client("Error leaving", &e));
    }
    println!("Graceful leave complete");
    Ok(0)
}
