//! `registry-node version`: our version, the Consul API level we follow and the
//! protocol line of `consul version` (`-format=pretty|json`).

use registry_api::{CONSUL_COMPAT_VERSION, VERSION};
use serde::Serialize;

use super::output::fail;
use registry_api::gojson::go_json_indent;

/// Consul's RPC protocol versions (`consul version`'s last line).
const PROTOCOL_DEFAULT: u32 = 2;
/// Oldest protocol understood.
const PROTOCOL_MIN: u32 = 2;
/// Newest protocol understood.
const PROTOCOL_MAX: u32 = 3;

/// Arguments of `version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format {pretty|json}.
    #[arg(long, default_value = "pretty", value_name = "format")]
    pub format: String,
}

/// `-format=json` output: Consul's `VersionInfo` fields plus the API level.
#[derive(Debug, Serialize)]
struct VersionInfo {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Revision")]
    revision: &'static str,
    #[serde(rename = "Prerelease")]
    prerelease: &'static str,
    #[serde(rename = "ConsulCompatibleVersion")]
    consul_compatible_version: &'static str,
    #[serde(rename = "RPC")]
    rpc: RpcVersionInfo,
}

#[derive(Debug, Serialize)]
struct RpcVersionInfo {
    #[serde(rename = "Default")]
    default: u32,
    #[serde(rename = "Min")]
    min: u32,
    #[serde(rename = "Max")]
    max: u32,
}

/// Runs `version`.
pub async fn run(args: VersionArgs) -> anyhow::Result<i32> {
    match render(&args.format) {
        Ok(text) => {
            println!("{text}");
            Ok(0)
        }
        Err(msg) => Ok(fail(msg)),
    }
}

/// The text `version` prints (before the final newline).
pub fn render(format: &str) -> Result<String, String> {
    match format {
        "pretty" => {
            let mut out = format!("registry-node v{VERSION}\n");
            out.push_str(&format!(
                "Consul API compatible: v{CONSUL_COMPAT_VERSION}\n"
            ));
            let supplement = if PROTOCOL_DEFAULT < PROTOCOL_MAX {
                format!(
                    " (agent will automatically use protocol >{PROTOCOL_DEFAULT} when speaking to compatible agents)"
                )
            } else {
                String::new()
            };
            // Consul's pretty output ends with a newline of its own, then the UI adds one.
            out.push_str(&format!(
                "Protocol {PROTOCOL_DEFAULT} spoken by default, understands {PROTOCOL_MIN} to {PROTOCOL_MAX}{supplement}\n"
            ));
            Ok(out)
        }
        "json" => {
            let info = VersionInfo {
                version: VERSION,
                revision: "",
                prerelease: "",
                consul_compatible_version: CONSUL_COMPAT_VERSION,
                rpc: RpcVersionInfo {
                    default: PROTOCOL_DEFAULT,
                    min: PROTOCOL_MIN,
                    max: PROTOCOL_MAX,
                },
            };
            go_json_indent(&info, "   ").map_err(|e| format!("Failed to marshal version info: {e}"))
        }
        other => Err(format!("Unknown format: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_and_json() {
        let text = render("pretty").unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], format!("registry-node v{VERSION}"));
        assert_eq!(
            lines[1],
            format!("Consul API compatible: v{CONSUL_COMPAT_VERSION}")
        );
        assert_eq!(
            lines[2],
            "Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)"
        );
        let json: serde_json::Value = serde_json::from_str(&render("json").unwrap()).unwrap();
        assert_eq!(json["Version"], VERSION);
        assert_eq!(json["RPC"]["Max"], 3);
        assert_eq!(render("xml").unwrap_err(), "Unknown format: xml");
    }
}
