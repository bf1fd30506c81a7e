//! `registry-node validate`.

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {}

/// Runs `validate`.
pub async fn run(_args: ValidateArgs) -> anyhow::Result<i32> {
    anyhow::bail!("validate: not implemented yet")
}
