//! `registry-node leave`.

/// Arguments of `leave`.
#[derive(Debug, clap::Args)]
pub struct LeaveArgs {}

/// Runs `leave`.
pub async fn run(_args: LeaveArgs) -> anyhow::Result<i32> {
    anyhow::bail!("leave: not implemented yet")
}
