//! Agent configuration: flags, JSON and HCL files.

/// Flags of `registry-node agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {}
