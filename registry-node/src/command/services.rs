//! `registry-node services register|deregister`: manage services of the local
//! agent (`/v1/agent/service/*`) from flags or from JSON/HCL definition files
//! (`{"service": {...}}` or `{"services": [...]}`, snake_case or CamelCase keys).

use std::path::Path;

use registry_api::{AgentServiceRegistration, ServiceAddress};
use serde_json::Value;

use super::http_flags::{HttpFlags, parse_key_value};
use super::output::{fail, fail_client};

/// Arguments of `services`.
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// The services subcommand.
    #[command(subcommand)]
    pub command: ServicesCommand,
}

/// `services` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ServicesCommand {
    /// Register services with the local agent.
    Register(RegisterArgs),
    /// Deregister services with the local agent.
    Deregister(DeregisterArgs),
}

/// Arguments of `services register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// ID of the service (defaults to -name).
    #[arg(long, value_name = "string")]
    pub id: Option<String>,

    /// Name of the service.
    #[arg(long, value_name = "string")]
    pub name: Option<String>,

    /// Address of the service.
    #[arg(long, value_name = "string")]
    pub address: Option<String>,

    /// Port of the service.
    #[arg(long, value_name = "int")]
    pub port: Option<u16>,

    /// Path to the service's Unix domain socket (conflicts with address and port).
    #[arg(long, value_name = "string")]
    pub socket: Option<String>,

    /// Metadata `key=value` (repeatable).
    #[arg(long, value_parser = parse_key_value, value_name = "key=value")]
    pub meta: Vec<(String, String)>,

    /// Tag to add to the service (repeatable).
    #[arg(long, value_name = "value")]
    pub tag: Vec<String>,

    /// Tagged address `key=address:port` (repeatable).
    #[arg(long = "tagged-address", value_parser = parse_key_value, value_name = "key=value")]
    pub tagged_address: Vec<(String, String)>,

    /// The service's kind.
    #[arg(long, value_name = "string")]
    pub kind: Option<String>,

    /// Service definition files (JSON or HCL).
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Arguments of `services deregister`.
#[derive(Debug, clap::Args)]
pub struct DeregisterArgs {
    /// ID to deregister (not together with files).
    #[arg(long, value_name = "string")]
    pub id: Option<String>,

    /// Service definition files whose services to deregister.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `services`.
pub async fn run(args: ServicesArgs) -> anyhow::Result<i32> {
    Ok(match args.command {
        ServicesCommand::Register(a) => register(a).await,
        ServicesCommand::Deregister(a) => deregister(a).await,
    })
}

/// Parses `address:port` (or `[v6]:port`) of a `-tagged-address` value.
fn parse_service_addr(text: &str) -> Result<ServiceAddress, String> {
    let invalid = || format!("Invalid Tagged Address: {text}");
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().map_err(|_| invalid())?;
    Ok(ServiceAddress {
        address: host.to_string(),
        port,
    })
}

/// The registration described by the flags alone.
fn from_flags(args: &RegisterArgs) -> Result<AgentServiceRegistration, String> {
    let mut reg = AgentServiceRegistration {
        kind: args.kind.clone().unwrap_or_default(),
        id: args.id.clone().unwrap_or_default(),
        name: args.name.clone().unwrap_or_default(),
        address: args.address.clone().unwrap_or_default(),
        port: args.port.unwrap_or(0),
        socket_path: args.socket.clone().unwrap_or_default(),
        tags: args.tag.clone(),
        meta: args.meta.iter().cloned().collect(),
        ..AgentServiceRegistration::default()
    };
    for (tag, addr) in &args.tagged_address {
        reg.tagged_addresses
            .insert(tag.clone(), parse_service_addr(addr)?);
    }
    Ok(reg)
}

/// Fills what a file left out from the flags (Consul's `CombineArgs`): scalars
/// only when the file has none; meta, tagged addresses and tags are merged.
fn combine(file: &mut AgentServiceRegistration, flags: &AgentServiceRegistration) {
    let fill = |dst: &mut String, src: &String| {
        if dst.is_empty() && !src.is_empty() {
            dst.clone_from(src);
        }
    };
    fill(&mut file.id, &flags.id);
    fill(&mut file.name, &flags.name);
    fill(&mut file.address, &flags.address);
    fill(&mut file.kind, &flags.kind);
    fill(&mut file.socket_path, &flags.socket_path);
    if file.port == 0 {
        file.port = flags.port;
    }
    file.meta.extend(flags.meta.clone());
    file.tagged_addresses.extend(flags.tagged_addresses.clone());
    file.tags.extend(flags.tags.iter().cloned());
}

/// Service definitions of one file: the `service` object(s) and `services`
/// list, keys matched like Consul's config loader (case and `_` insensitive).
pub fn services_from_file(path: &Path) -> Result<Vec<AgentServiceRegistration>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error reading {}: {e}", path.display()))?;
    let parse_error = |e: String| format!("Error parsing {}: {e}", path.display());
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?,
        Some("hcl") => hcl::from_str(&text).map_err(|e| parse_error(e.to_string()))?,
        _ => match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => hcl::from_str(&text).map_err(|e| parse_error(e.to_string()))?,
        },
    };
    services_from_value(value).map_err(parse_error)
}

/// The service definitions of a parsed config document.
pub fn services_from_value(value: Value) -> Result<Vec<AgentServiceRegistration>, String> {
    let Value::Object(top) = value else {
        return Err("the top level must be an object".to_string());
    };
    let mut out = Vec::new();
    for (key, value) in top {
        if !matches!(key.to_ascii_lowercase().as_str(), "service" | "services") {
            continue;
        }
        // HCL turns repeated blocks into a list, a single block into an object;
        // accept both under either key.
        let items = match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        for item in items {
            let reg: AgentServiceRegistration =
                registry_api::decode::from_value(item).map_err(|e| format!("{key}: {e}"))?;
            out.push(reg);
        }
    }
    Ok(out)
}

fn services_from_files(files: &[String]) -> Result<Vec<AgentServiceRegistration>, String> {
    let mut out = Vec::new();
    for file in files {
        out.extend(services_from_file(Path::new(file))?);
    }
    Ok(out)
}

async fn register(args: RegisterArgs) -> i32 {
    let flags = match from_flags(&args) {
        Ok(f) => f,
        Err(msg) => return fail(msg),
    };
    if args.files.is_empty() && flags.name.is_empty() {
        return fail("Service registration requires at least one argument or flags.");
    }
    let services = if args.files.is_empty() {
        vec![flags]
    } else {
        match services_from_files(&args.files) {
            Ok(mut found) => {
                for svc in &mut found {
                    combine(svc, &flags);
                }
                found
            }
            Err(msg) => return fail(format!("Error: {msg}")),
        }
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return fail(msg),
    };
    for svc in &services {
        if let Err(e) = client.agent_service_register(svc).await {
            return fail_client(&format!("Error registering service {:?}", svc.name), &e);
        }
        println!("Registered service: {}", svc.name);
    }
    0
}

async fn deregister(args: DeregisterArgs) -> i32 {
    let id = args.id.clone().filter(|i| !i.is_empty());
    if args.files.is_empty() && id.is_none() {
        return fail("Service deregistration requires at least one argument or -id.");
    }
    if !args.files.is_empty() && id.is_some() {
        return fail("Service deregistration requires arguments or -id, not both.");
    }
    let ids: Vec<String> = match id {
        Some(id) => vec![id],
        None => match services_from_files(&args.files) {
            Ok(found) => found.iter().map(|s| s.effective_id().to_string()).collect(),
            Err(msg) => return fail(format!("Error: {msg}")),
        },
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return fail(msg),
    };
    for id in ids.iter().filter(|id| !id.is_empty()) {
        if let Err(e) = client.agent_service_deregister(id).await {
            return fail_client(&format!("Error deregistering service {id:?}"), &e);
        }
        println!("Deregistered service: {id}");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn json_snake_and_camel_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "web.json",
            r#"{"service": {"name": "web", "port": 80, "tags": ["v1"],
                "enable_tag_override": true, "meta": {"Team": "x"},
                "check": {"http": "http://localhost/health", "interval": "10s"}}}"#,
        );
        let svcs = services_from_file(&path).unwrap();
        assert_eq!(svcs.len(), 1);
        assert_eq!((svcs[0].name.as_str(), svcs[0].port), ("web", 80));
        assert!(svcs[0].enable_tag_override);
        assert_eq!(svcs[0].meta.get("Team").map(String::as_str), Some("x"));
        assert_eq!(
            svcs[0].check.as_ref().unwrap().http,
            "http://localhost/health"
        );

        let path = write(
            &dir,
            "many.json",
            r#"{"Services": [{"Name": "a", "ID": "a1"}, {"Name": "b"}], "datacenter": "dc1"}"#,
        );
        let svcs = services_from_file(&path).unwrap();
        assert_eq!(
            svcs.iter().map(|s| s.effective_id()).collect::<Vec<_>>(),
            ["a1", "b"]
        );
    }

    #[test]
    fn hcl_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "svc.hcl",
            r#"
service {
  name = "redis"
  port = 6379
  tagged_addresses {
    lan = { address = "10.0.0.5", port = 6379 }
  }
  checks = [{ tcp = "localhost:6379", interval = "5s" }]
}
services { name = "x" }
services { name = "y" }
"#,
        );
        let svcs = services_from_file(&path).unwrap();
        let names: Vec<_> = svcs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["redis", "x", "y"]);
        assert_eq!(svcs[0].tagged_addresses["lan"].address, "10.0.0.5");
        assert_eq!(svcs[0].checks[0].tcp, "localhost:6379");
    }

    #[test]
    fn flags_fill_in_what_files_leave_out() {
        let mut file = AgentServiceRegistration {
            name: "web".into(),
            port: 80,
            ..Default::default()
        };
        let flags = AgentServiceRegistration {
            name: "ignored".into(),
            address: "10.0.0.1".into(),
            port: 9,
            tags: vec!["t".into()],
            ..Default::default()
        };
        combine(&mut file, &flags);
        assert_eq!(
            (file.name.as_str(), file.port, file.address.as_str()),
            ("web", 80, "10.0.0.1")
        );
        assert_eq!(file.tags, ["t"]);
    }

    #[test]
    fn tagged_address_values() {
        assert_eq!(parse_service_addr("10.0.0.1:80").unwrap().port, 80);
        assert_eq!(parse_service_addr("[::1]:80").unwrap().address, "::1");
        assert!(parse_service_addr("nope").is_err());
    }
}
