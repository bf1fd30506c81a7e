//! `registry-node agent`: load config, bind listeners, start the agent, wait for a signal.

use crate::config::AgentArgs;

/// Runs the agent until it is told to stop.
pub async fn run(_args: AgentArgs) -> anyhow::Result<i32> {
    anyhow::bail!("agent: not implemented yet")
}
