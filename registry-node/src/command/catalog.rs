//! `registry-node catalog`.

/// Arguments of `catalog`.
#[derive(Debug, clap::Args)]
pub struct CatalogArgs {}

/// Runs `catalog`.
pub async fn run(_args: CatalogArgs) -> anyhow::Result<i32> {
    anyhow::bail!("catalog: not implemented yet")
}
