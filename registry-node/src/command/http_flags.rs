//! HTTP client flags shared by every API-backed subcommand (Consul's
//! `-http-addr`, `-token`, `-token-file`, `-datacenter`, `-stale`), and the Go
//! boolean syntax those commands accept.

use registry_api::client::{Client, ClientError, DEFAULT_HTTP_ADDR};
use registry_api::{Consistency, QueryOptions};

/// Parses a flag value the way Go's `strconv.ParseBool` does, so `-recurse=1`
/// and `-recurse=False` work as they do with Consul.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean value {text:?}")),
    }
}

/// Parses a repeatable `key=value` flag (`-meta`, `-node-meta`), as Consul's
/// `FlagMapValue` does: split at the first `=`.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) => Ok((k.to_string(), v.to_string())),
        None => Err(format!("Missing = in argument: {text}")),
    }
}

/// Flags of Consul's `HTTPFlags` (client + server flags), flattened into each
/// client subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpFlags {
    /// The `address` and port of the agent's HTTP API (`http://127.0.0.1:8500`).
    #[arg(long = "http-addr", env = "CONSUL_HTTP_ADDR", value_name = "address")]
    pub http_addr: Option<String>,

    /// ACL token to use in the request.
    #[arg(
        long = "token",
        env = "CONSUL_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "value"
    )]
    pub token: Option<String>,

    /// File containing the ACL token to use in the request.
    #[arg(
        long = "token-file",
        env = "CONSUL_HTTP_TOKEN_FILE",
        value_name = "value"
    )]
    pub token_file: Option<String>,

    /// Name of the datacenter to query (default: the agent's datacenter).
    #[arg(long = "datacenter", value_name = "name")]
    pub datacenter: Option<String>,

    /// Permit any Consul server (non-leader) to respond to this request.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub stale: bool,
}

impl HttpFlags {
    /// The agent address: the flag, else `CONSUL_HTTP_ADDR`, else the default.
    pub fn address(&self) -> &str {
        self.http_addr
            .as_deref()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or(DEFAULT_HTTP_ADDR)
    }

    /// The token: `-token`/`CONSUL_HTTP_TOKEN` first, then the contents of
    /// `-token-file`/`CONSUL_HTTP_TOKEN_FILE`.
    pub fn token(&self) -> Result<Option<String>, String> {
        if let Some(token) = self.token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(token.clone()));
        }
        match self.token_file.as_ref().filter(|f| !f.is_empty()) {
            Some(path) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_string()).filter(|t| !t.is_empty()))
                .map_err(|e| format!("Error loading token file {path}: {e}")),
            None => Ok(None),
        }
    }

    /// A client for these flags; `Err` holds the message Consul prints
    /// (`Error connecting to Consul agent: ...`).
    pub fn client(&self) -> Result<Client, String> {
        let connect_error = |e: ClientError| format!("Error connecting to Consul agent: {e}");
        let mut client = Client::new(self.address()).map_err(connect_error)?;
        if let Some(token) = self.token()? {
            client = client.with_token(token);
        }
        if let Some(dc) = &self.datacenter {
            client = client.with_datacenter(dc.clone());
        }
        Ok(client)
    }

    /// Read options for these flags (`-stale`; the datacenter travels with the client).
    pub fn query_options(&self) -> QueryOptions {
        QueryOptions {
            consistency: if self.stale {
                Consistency::Stale
            } else {
                Consistency::Default
            },
            ..QueryOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        http: HttpFlags,
    }

    #[test]
    fn go_booleans() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("F"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("ab").is_err());
    }

    #[test]
    fn flags_parse_with_and_without_values() {
        let cmd =
            Cmd::try_parse_from(["x", "--stale", "--datacenter=dc2", "--http-addr=1.2.3.4:1"])
                .unwrap();
        assert!(cmd.http.stale);
        assert_eq!(cmd.http.datacenter.as_deref(), Some("dc2"));
        assert_eq!(cmd.http.address(), "1.2.3.4:1");
        assert_eq!(cmd.http.query_options().consistency, Consistency::Stale);
        let cmd = Cmd::try_parse_from(["x", "--stale=false"]).unwrap();
        assert!(!cmd.http.stale);
    }

    #[test]
    fn https_is_refused_with_the_connect_prefix() {
        let flags = HttpFlags {
            http_addr: Some("https://a:8501".into()),
            ..HttpFlags::default()
        };
        let err = flags.client().unwrap_err();
        assert!(
            err.starts_with("Error connecting to Consul agent: https not supported yet"),
            "{err}"
        );
    }
}
