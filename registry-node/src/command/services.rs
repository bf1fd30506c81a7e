//! `registry-node services`.

/// Arguments of `services`.
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {}

/// Runs `services`.
pub async fn run(_args: ServicesArgs) -> anyhow::Result<i32> {
    anyhow::bail!("services: not implemented yet")
}
