//! `registry-node info`: the `Stats` sections of `/v1/agent/self`, printed as
//! Consul does (`section:` then sorted `\tkey = value` lines).

use serde_json::Value;

use super::http_flags::HttpFlags;
use super::output::{fail, fail_client};

/// Arguments of `info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `info`.
pub async fn run(args: InfoArgs) -> anyhow::Result<i32> {
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    // Read `Stats` loosely: `info` must keep working when other parts of the
    // answer change shape.
    let opts = args.http.query_options();
    let this = match client.query::<Value>("/v1/agent/self", &[], &opts).await {
        Ok((Some(v), _)) => v,
        Ok((None, _)) => return Ok(fail("Error querying agent: empty answer")),
        Err(e) => return Ok(fail_client("Error querying agent", &e)),
    };
    match format_stats(&this) {
        Ok(text) => {
            print!("{text}");
            Ok(0)
        }
        Err(msg) => Ok(fail(msg)),
    }
}

/// Formats the `Stats` object of an `/v1/agent/self` answer.
pub fn format_stats(this: &Value) -> Result<String, String> {
    let Some(stats) = this.get("Stats").and_then(Value::as_object) else {
        return Err("Agent response did not contain 'Stats' key".to_string());
    };
    let mut sections: Vec<_> = stats.iter().collect();
    sections.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (name, section) in sections {
        out.push_str(name);
        out.push_str(":\n");
        let Some(section) = section.as_object() else {
            return Err(format!("Got invalid subkey in stats: {section}"));
        };
        let mut keys: Vec<_> = section.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in keys {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("\t{key} = {value}\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_keys_are_sorted() {
        let this = serde_json::json!({
            "Stats": {
                "raft": {"state": "Leader", "applied_index": "12"},
                "agent": {"services": "1", "checks": "0"}
            }
        });
        let text = format_stats(&this).unwrap();
        assert_eq!(
            text,
            "agent:\n\tchecks = 0\n\tservices = 1\nraft:\n\tapplied_index = 12\n\tstate = Leader\n"
        );
        assert!(format_stats(&serde_json::json!({})).is_err());
    }
}
