//! `registry-node kv`.

/// Arguments of `kv`.
#[derive(Debug, clap::Args)]
pub struct KvArgs {}

/// Runs `kv`.
pub async fn run(_args: KvArgs) -> anyhow::Result<i32> {
    anyhow::bail!("kv: not implemented yet")
}
