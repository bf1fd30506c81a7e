//! `registry-node info`.

/// Arguments of `info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {}

/// Runs `info`.
pub async fn run(_args: InfoArgs) -> anyhow::Result<i32> {
    anyhow::bail!("info: not implemented yet")
}
