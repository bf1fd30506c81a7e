//! `registry-node join`.

/// Arguments of `join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {}

/// Runs `join`.
pub async fn run(_args: JoinArgs) -> anyhow::Result<i32> {
    anyhow::bail!("join: not implemented yet")
}
