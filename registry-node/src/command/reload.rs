//! `registry-node reload`.

/// Arguments of `reload`.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {}

/// Runs `reload`.
pub async fn run(_args: ReloadArgs) -> anyhow::Result<i32> {
    anyhow::bail!("reload: not implemented yet")
}
