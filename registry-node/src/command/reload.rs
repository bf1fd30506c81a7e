//! `registry-node reload`: make the agent re-read its configuration files
//! (`PUT /v1/agent/reload`).

use super::http_flags::HttpFlags;
use super::output::{fail, fail_client};

/// Arguments of `reload`.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `reload`.
pub async fn run(args: ReloadArgs) -> anyhow::Result<i32> {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.agent_reload().await {
        return Ok(fail_client("Error reloading", &e));
    }
    println!("Configuration reload triggered");
    Ok(0)
}
