//! `registry-node maint`: node and service maintenance mode through
//! `/v1/agent/maintenance` and `/v1/agent/service/maintenance/:id`, with
//! Consul's messages. Without `-enable`/`-disable` it lists the maintenances
//! in effect, read from the agent's `_node_maintenance` and
//! `_service_maintenance:<id>` checks.

use registry_api::client::Client;

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{fail, fail_client};

/// Check ID of node maintenance.
const NODE_MAINT_CHECK: &str = "_node_maintenance";
/// Check ID prefix of service maintenance.
const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";

/// Arguments of `maint`.
#[derive(Debug, clap::Args)]
pub struct MaintArgs {
    /// Enable maintenance mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub enable: bool,

    /// Disable maintenance mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub disable: bool,

    /// Text describing the maintenance reason (with -enable).
    #[arg(long, default_value = "", value_name = "string")]
    pub reason: String,

    /// ID of a service to put in maintenance instead of the node.
    #[arg(long = "service", default_value = "", value_name = "string")]
    pub service: String,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `maint`.
pub async fn run(args: MaintArgs) -> anyhow::Result<i32> {
    if args.enable && args.disable {
        return Ok(fail("Only one of -enable or -disable may be provided"));
    }
    if !args.enable && !args.reason.is_empty() {
        return Ok(fail("Reason may only be provided with -enable"));
    }
    if !args.enable && !args.disable && !args.service.is_empty() {
        return Ok(fail("Service requires either -enable or -disable"));
    }
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    let node_name = match client.agent_self(&args.http.query_options()).await {
        Ok((me, _)) => me.config.node_name,
        Err(e) => return Ok(fail_client("Error querying Consul agent", &e)),
    };
    if !args.enable && !args.disable {
        return Ok(list(&client, &args.http, &node_name).await);
    }
    let service = (!args.service.is_empty()).then_some(args.service.as_str());
    let (path, what) = match service {
        None => ("/v1/agent/maintenance".to_string(), "node"),
        Some(id) => (
            format!(
                "/v1/agent/service/maintenance/{}",
                registry_api::client::escape_path(id)
            ),
            "service",
        ),
    };
    let params = [
        ("enable", args.enable.to_string()),
        ("reason", args.reason.clone()),
    ];
    let verb = if args.enable { "enabling" } else { "disabling" };
    if let Err(e) = client
        .put_json::<_, serde_json::Value>(&path, &params, &serde_json::Value::Null)
        .await
    {
        return Ok(fail_client(&format!("Error {verb} {what} maintenance"), &e));
    }
    let moved = if args.enable { "entered" } else { "left" };
    match service {
        None => println!("Node {moved} maintenance mode"),
        Some(id) => println!("Service {moved} maintenance mode: {id}"),
    }
    Ok(0)
}

/// Prints the `Node:` / `Service:` blocks of the maintenances in effect.
async fn list(client: &Client, http: &HttpFlags, node_name: &str) -> i32 {
    let checks = match client.agent_checks(&http.query_options()).await {
        Ok((checks, _)) => checks,
        Err(e) => return fail_client("Error getting checks", &e),
    };
    let mut out = String::new();
    for (id, check) in &checks {
        if id == NODE_MAINT_CHECK {
            out.push_str(&format!(
                "Node:\n  Name:   {node_name}\n  Reason: {}\n\n",
                check.notes
            ));
        } else if id.starts_with(SERVICE_MAINT_PREFIX) {
            out.push_str(&format!(
                "Service:\n  ID:     {}\n  Reason: {}\n\n",
                check.service_id, check.notes
            ));
        }
    }
    print!("{out}");
    0
}
