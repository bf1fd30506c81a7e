//! `registry-node force-leave [-prune] [-wan] NODE`: move a failed member to the
//! `left` state (`PUT /v1/agent/force-leave/:node`). Silent on success, as Consul.

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{fail, fail_client};

/// Consul's usage text, printed after a wrong number of node names.
const USAGE: &str = "Usage: registry-node force-leave [options] name

  Forces a member of a Consul cluster to enter the \"left\" state. Note
  that if the member is still actually alive, it will eventually rejoin
  the cluster. This command is most useful for cleaning out \"failed\" nodes
  that are never coming back. If you do not force leave a failed node,
  Consul will attempt to reconnect to those failed nodes for some period of
  time before eventually reaping them.";

/// Arguments of `force-leave`.
#[derive(Debug, clap::Args)]
pub struct ForceLeaveArgs {
    /// Remove agent completely from list of members.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub prune: bool,

    /// Exclusively leave the agent from the WAN serf pool.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub wan: bool,

    /// The node to force out (`node`, or `node.dc` with `-wan`).
    #[arg(value_name = "name")]
    pub nodes: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// The single node name, or Consul's complaint.
pub fn single_node(nodes: &[String]) -> Result<&str, &'static str> {
    match nodes {
        [node] => Ok(node),
        _ => Err("A single node name must be specified to force leave."),
    }
}

/// Runs `force-leave`: exit 0 silently, 1 with `Error force leaving: ...`.
pub async fn run(args: ForceLeaveArgs) -> anyhow::Result<i32> {
    let node = match single_node(&args.nodes) {
        Ok(node) => node,
        Err(msg) => {
            eprintln!("{msg}\n\n{USAGE}");
            return Ok(1);
        }
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.agent_force_leave(node, args.prune, args.wan).await {
        return Ok(fail_client("Error force leaving", &e));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_node() {
        assert_eq!(single_node(&["n1".into()]), Ok("n1"));
        let err = Err("A single node name must be specified to force leave.");
        assert_eq!(single_node(&[]), err);
        assert_eq!(single_node(&["a".into(), "b".into()]), err);
    }
}
