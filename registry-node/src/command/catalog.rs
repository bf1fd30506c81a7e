//! `registry-node catalog services|nodes|datacenters`: read the catalog
//! (`/v1/catalog/*`) and print it as Consul does.

use std::collections::BTreeMap;

use registry_api::{Node, NodeServices, QueryOptions, ServiceNode};

use super::http_flags::{HttpFlags, parse_bool, parse_key_value};
use super::output::{columnize, fail, fail_client, map_to_kv, tabwrite};

/// Arguments of `catalog`.
#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// The catalog subcommand.
    #[command(subcommand)]
    pub command: CatalogCommand,
}

/// `catalog` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Lists all registered services in a datacenter.
    Services(CatalogServicesArgs),
    /// Lists all nodes in the given datacenter.
    Nodes(CatalogNodesArgs),
    /// Lists all known datacenters.
    Datacenters(CatalogDatacentersArgs),
}

/// Arguments of `catalog services`.
#[derive(Debug, clap::Args)]
pub struct CatalogServicesArgs {
    /// Node `id or name` for which to list services.
    #[arg(long, value_name = "id or name")]
    pub node: Option<String>,

    /// Only services on nodes with this `key=value` metadata (repeatable).
    #[arg(long = "node-meta", value_parser = parse_key_value, value_name = "key=value")]
    pub node_meta: Vec<(String, String)>,

    /// Display each service's tags as a comma-separated list.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub tags: bool,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `catalog nodes`.
#[derive(Debug, clap::Args)]
pub struct CatalogNodesArgs {
    /// Output full node IDs, tagged addresses and metadata.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub detailed: bool,

    /// Sort by estimated round-trip time from this node (`_agent` = this agent).
    #[arg(long, value_name = "node name")]
    pub near: Option<String>,

    /// Only nodes with this `key=value` metadata (repeatable).
    #[arg(long = "node-meta", value_parser = parse_key_value, value_name = "key=value")]
    pub node_meta: Vec<(String, String)>,

    /// Only nodes providing this service (`id or name`).
    #[arg(long, value_name = "id or name")]
    pub service: Option<String>,

    /// Filter expression to use with the request.
    #[arg(long, value_name = "expression")]
    pub filter: Option<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `catalog datacenters`.
#[derive(Debug, clap::Args)]
pub struct CatalogDatacentersArgs {
    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `catalog`.
pub async fn run(args: CatalogArgs) -> anyhow::Result<i32> {
    Ok(match args.command {
        CatalogCommand::Services(a) => services(a).await,
        CatalogCommand::Nodes(a) => nodes(a).await,
        CatalogCommand::Datacenters(a) => datacenters(a).await,
    })
}

/// `node-meta=k:v` parameters, the way Consul's client sends them.
fn node_meta_params(meta: &[(String, String)]) -> Vec<(&'static str, String)> {
    meta.iter()
        .map(|(k, v)| ("node-meta", format!("{k}:{v}")))
        .collect()
}

async fn services(args: CatalogServicesArgs) -> i32 {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return fail(msg),
    };
    let opts = args.http.query_options();
    let params = node_meta_params(&args.node_meta);
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(node) = args.node.as_deref().filter(|n| !n.is_empty()) {
        let path = format!(
            "/v1/catalog/node/{}",
            registry_api::client::escape_path(node)
        );
        match client.query::<NodeServices>(&path, &params, &opts).await {
            Ok((Some(found), _)) => {
                for svc in found.services.into_values() {
                    services.entry(svc.service).or_default().extend(svc.tags);
                }
            }
            Ok((None, _)) => {}
            Err(e) => return fail_client("Error listing services for node", &e),
        }
    } else {
        let answer = client
            .query::<BTreeMap<String, Option<Vec<String>>>>("/v1/catalog/services", &params, &opts)
            .await;
        match answer {
            Ok((found, _)) => {
                services = found
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
            }
            Err(e) => return fail_client("Error listing services", &e),
        }
    }
    if services.is_empty() {
        eprintln!("No services match the given query - try expanding your search.");
        return 0;
    }
    println!("{}", format_services(services, args.tags));
    0
}

/// Sorted service names, or with `tags` a tabwriter table of name and sorted,
/// comma-joined tags (trimmed as a whole, as Consul does).
pub fn format_services(services: BTreeMap<String, Vec<String>>, tags: bool) -> String {
    if !tags {
        return services.into_keys().collect::<Vec<_>>().join("\n");
    }
    let joined: Vec<(String, String)> = services
        .into_iter()
        .map(|(name, mut tags)| {
            tags.sort();
            (name, tags.join(","))
        })
        .collect();
    let rows: Vec<(&str, &[u8])> = joined
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_bytes()))
        .collect();
    String::from_utf8_lossy(&tabwrite(&rows)).trim().to_string()
}

async fn nodes(args: CatalogNodesArgs) -> i32 {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return fail(msg),
    };
    let opts = QueryOptions {
        filter: args.filter.clone(),
        ..args.http.query_options()
    };
    let mut params = node_meta_params(&args.node_meta);
    if let Some(near) = args.near.as_ref().filter(|n| !n.is_empty()) {
        params.push(("near", near.clone()));
    }
    let nodes: Vec<Node> = if let Some(service) = args.service.as_deref().filter(|s| !s.is_empty())
    {
        let path = format!(
            "/v1/catalog/service/{}",
            registry_api::client::escape_path(service)
        );
        match client
            .query::<Vec<ServiceNode>>(&path, &params, &opts)
            .await
        {
            Ok((found, _)) => found.unwrap_or_default().iter().map(node_of).collect(),
            Err(e) => return fail_client("Error listing nodes for service", &e),
        }
    } else {
        match client
            .query::<Vec<Node>>("/v1/catalog/nodes", &params, &opts)
            .await
        {
            Ok((found, _)) => found.unwrap_or_default(),
            Err(e) => return fail_client("Error listing nodes", &e),
        }
    };
    if nodes.is_empty() {
        eprintln!("No nodes match the given query - try expanding your search.");
        return 0;
    }
    println!("{}", format_nodes(&nodes, args.detailed));
    0
}

/// The node part of a service instance (`catalog nodes -service=`).
fn node_of(s: &ServiceNode) -> Node {
    Node {
        id: s.id.clone(),
        node: s.node.clone(),
        address: s.address.clone(),
        datacenter: s.datacenter.clone(),
        tagged_addresses: s.tagged_addresses.clone(),
        meta: s.node_meta.clone(),
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}

/// The `catalog nodes` table: `Node  ID  Address  DC`, the ID cut at its first
/// `-`; `detailed` keeps the full ID and adds `TaggedAddresses` and `Meta`.
pub fn format_nodes(nodes: &[Node], detailed: bool) -> String {
    let mut rows = Vec::with_capacity(nodes.len() + 1);
    if detailed {
        rows.push(
            ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"]
                .map(String::from)
                .to_vec(),
        );
        for n in nodes {
            rows.push(vec![
                n.node.clone(),
                n.id.clone(),
                n.address.clone(),
                n.datacenter.clone(),
                map_to_kv(&n.tagged_addresses, ", "),
                map_to_kv(&n.meta, ", "),
            ]);
        }
    } else {
        rows.push(["Node", "ID", "Address", "DC"].map(String::from).to_vec());
        for n in nodes {
            let id = match n.id.find('-') {
                Some(idx) if idx > 0 => &n.id[..idx],
                _ => n.id.as_str(),
            };
            rows.push(vec![
                n.node.clone(),
                id.to_string(),
                n.address.clone(),
                n.datacenter.clone(),
            ]);
        }
    }
    columnize(&rows)
}

async fn datacenters(args: CatalogDatacentersArgs) -> i32 {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return fail(msg),
    };
    match client.catalog_datacenters().await {
        Ok(dcs) => {
            for dc in dcs {
                println!("{dc}");
            }
            0
        }
        Err(e) => fail_client("Error listing datacenters", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, id: &str) -> Node {
        let mut n = Node {
            node: name.into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            datacenter: "dc1".into(),
            ..Node::default()
        };
        n.tagged_addresses.insert("lan".into(), "10.0.0.1".into());
        n.tagged_addresses.insert("wan".into(), "1.2.3.4".into());
        n
    }

    #[test]
    fn nodes_table_short_and_detailed() {
        let nodes = [node("server-1", "e5a1b3c2-0000-1111-2222-333344445555")];
        assert_eq!(
            format_nodes(&nodes, false),
            "Node      ID        Address   DC\nserver-1  e5a1b3c2  10.0.0.1  dc1"
        );
        let detailed = format_nodes(&nodes, true);
        assert_eq!(
            detailed.lines().nth(1).unwrap(),
            "server-1  e5a1b3c2-0000-1111-2222-333344445555  10.0.0.1  dc1  lan=10.0.0.1, wan=1.2.3.4  "
        );
    }

    #[test]
    fn services_list_and_tags() {
        let services: BTreeMap<String, Vec<String>> = [
            ("web".to_string(), vec!["v2".to_string(), "v1".to_string()]),
            ("consul".to_string(), vec![]),
        ]
        .into();
        assert_eq!(format_services(services.clone(), false), "consul\nweb");
        assert_eq!(
            format_services(services, true),
            "consul      \nweb         v1,v2"
        );
    }
}
