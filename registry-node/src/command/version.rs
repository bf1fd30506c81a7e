//! `registry-node version`.

/// Arguments of `version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {}

/// Runs `version`.
pub async fn run(_args: VersionArgs) -> anyhow::Result<i32> {
    anyhow::bail!("version: not implemented yet")
}
