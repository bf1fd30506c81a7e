//! `registry-node members`.

/// Arguments of `members`.
#[derive(Debug, clap::Args)]
pub struct MembersArgs {}

/// Runs `members`.
pub async fn run(_args: MembersArgs) -> anyhow::Result<i32> {
    anyhow::bail!("members: not implemented yet")
}
