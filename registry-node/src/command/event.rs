//! `registry-node event`: fires a user event through `/v1/event/fire/:name`
//! and prints `Event ID: <uuid>`, as Consul's `event` command.

use registry_api::client::EventFireOptions;

use super::http_flags::HttpFlags;
use super::output::{fail, fail_client};

/// Arguments of `event`.
#[derive(Debug, clap::Args)]
pub struct EventArgs {
    /// Name of the event (required).
    #[arg(long, value_name = "string")]
    pub name: Option<String>,

    /// Regular expression on node names that should receive the event.
    #[arg(long, value_name = "string")]
    pub node: Option<String>,

    /// Regular expression on service names that should receive the event.
    #[arg(long, value_name = "string")]
    pub service: Option<String>,

    /// Regular expression on service tags (needs -service).
    #[arg(long, value_name = "string")]
    pub tag: Option<String>,

    /// `[payload]`: the event's payload.
    #[arg(value_name = "payload")]
    pub args: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `event`.
pub async fn run(args: EventArgs) -> anyhow::Result<i32> {
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let Some(name) = non_empty(&args.name) else {
        return Ok(fail("Event name must be specified"));
    };
    let (node, service, tag) = (
        non_empty(&args.node),
        non_empty(&args.service),
        non_empty(&args.tag),
    );
    for (what, filter) in [("node", &node), ("service", &service), ("tag", &tag)] {
        if let Some(re) = filter
            && let Err(e) = regex::Regex::new(re)
        {
            return Ok(fail(format!("Failed to compile {what} filter regexp: {e}")));
        }
    }
    if tag.is_some() && service.is_none() {
        return Ok(fail("Cannot provide tag filter without service filter."));
    }
    let payload = match args.args.as_slice() {
        [] => Vec::new(),
        [payload] => payload.as_bytes().to_vec(),
        _ => return Ok(fail("Too many command line arguments.")),
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.agent_self(&args.http.query_options()).await {
        return Ok(fail_client("Error querying Consul agent", &e));
    }
    let opts = EventFireOptions { node, service, tag };
    match client.event_fire(&name, &payload, &opts).await {
        Ok(event) => {
            println!("Event ID: {}", event.id);
            Ok(0)
        }
        Err(e) => Ok(fail_client("Error firing event", &e)),
    }
}
