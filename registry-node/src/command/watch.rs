//! `registry-node watch`: Consul's `watch` command. Without handler arguments it
//! prints the view as indented JSON every time its data changes; with them it
//! runs them as a handler (JSON on stdin, `CONSUL_INDEX` in the environment).
//! Runs until SIGINT/SIGTERM (exit 0) or until the handler fails (exit 1).

use serde_json::{Map, Value};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::http_flags::{HttpFlags, parse_bool};
use super::output::{fail, fail_client};
use crate::watches::{ChildCommand, Handler, WatchError, parse_watch_query, run_watch};

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Watch type: key, keyprefix, services, nodes, service, checks or event.
    #[arg(long = "type", value_name = "string")]
    pub watch_type: Option<String>,

    /// The key to watch (type key).
    #[arg(long, value_name = "string")]
    pub key: Option<String>,

    /// The key prefix to watch (type keyprefix).
    #[arg(long, value_name = "string")]
    pub prefix: Option<String>,

    /// The service to watch (type service; optional for checks).
    #[arg(long, value_name = "string")]
    pub service: Option<String>,

    /// Service tag to filter on (types service and checks); repeatable.
    #[arg(long = "tag", value_name = "value")]
    pub tag: Vec<String>,

    /// Only instances passing all their checks (type service): true or false.
    #[arg(long, value_name = "[true|false]")]
    pub passingonly: Option<String>,

    /// Check state to watch (type checks).
    #[arg(long, value_name = "string")]
    pub state: Option<String>,

    /// Event name to watch (type event).
    #[arg(long, value_name = "string")]
    pub name: Option<String>,

    /// Run the handler through the shell (`$SHELL -c`, joined arguments).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub shell: bool,

    /// Handler command and its arguments.
    #[arg(
        value_name = "child",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub handler: Vec<String>,

    /// HTTP client flags.
    #[command(flatten)]
    pub http: HttpFlags,
}

/// Runs `watch`.
pub async fn run(args: WatchArgs) -> anyhow::Result<i32> {
    let handler_args = super::lock::raw_trailing_args(&args.handler);
    let params = match watch_params(&args) {
        Ok(p) => p,
        Err(msg) => return Ok(fail(msg)),
    };
    let spec = match parse_watch_query(&Value::Object(params)) {
        Ok(spec) => spec,
        Err(msg) => return Ok(fail(msg)),
    };
    let client = match args.http.client() {
        Ok(c) => c,
        Err(msg) => return Ok(fail(msg)),
    };
    if let Err(e) = client.agent_self(&args.http.query_options()).await {
        return Ok(fail_client("Error querying Consul agent", &e));
    }
    let handler = if handler_args.is_empty() {
        Handler::print()
    } else {
        Handler::command(ChildCommand::from_args(&handler_args, args.shell))
    };

    let token = CancellationToken::new();
    spawn_signal_listener(token.clone())?;
    Ok(match run_watch(client, spec, handler, token).await {
        Ok(()) => 0,
        Err(WatchError::Handler(msg)) => fail(msg),
    })
}

/// The watch definition the flags describe, as Consul's command builds it: only
/// flags that were given, so the parser reports what does not fit the type.
fn watch_params(args: &WatchArgs) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    let mut put = |name: &str, value: &Option<String>| {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            params.insert(name.to_string(), Value::String(v.clone()));
        }
    };
    put("type", &args.watch_type);
    put("datacenter", &args.http.datacenter);
    put("key", &args.key);
    put("prefix", &args.prefix);
    put("service", &args.service);
    put("state", &args.state);
    put("name", &args.name);
    if let Some(token) = args.http.token()? {
        params.insert("token".into(), Value::String(token));
    }
    match args.tag.as_slice() {
        [] => {}
        [one] => {
            params.insert("tag".into(), Value::String(one.clone()));
        }
        many => {
            params.insert(
                "tag".into(),
                Value::Array(many.iter().cloned().map(Value::String).collect()),
            );
        }
    }
    if args.http.stale {
        params.insert("stale".into(), Value::Bool(true));
    }
    if let Some(text) = args.passingonly.as_ref().filter(|t| !t.is_empty()) {
        let b = parse_bool(text)
            .map_err(|_| format!("Failed to parse passingonly flag: invalid syntax {text:?}"))?;
        params.insert("passingonly".into(), Value::Bool(b));
    }
    if params.get("type").is_none() {
        return Err("Watch type must be specified".into());
    }
    Ok(params)
}

/// Cancels `token` on SIGINT or SIGTERM.
pub(crate) fn spawn_signal_listener(token: CancellationToken) -> anyhow::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: WatchArgs,
    }

    fn parse(argv: &[&str]) -> WatchArgs {
        Cmd::try_parse_from(std::iter::once("watch").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn handler_arguments_keep_their_dashes() {
        let args = parse(&["--type=key", "--key=k", "sh", "--c", "cat"]);
        assert_eq!(args.handler, vec!["sh", "--c", "cat"]);
        assert!(args.shell);
        let args = parse(&["--type=key", "--shell=false", "--key", "k"]);
        assert!(!args.shell);
        assert!(args.handler.is_empty());
    }

    #[test]
    fn params_follow_the_flags() {
        let args = parse(&[
            "--type=service",
            "--service=web",
            "--tag=a",
            "--tag=b",
            "--passingonly=true",
        ]);
        let params = watch_params(&args).unwrap();
        assert_eq!(
            Value::Object(params),
            serde_json::json!({"type": "service", "service": "web", "tag": ["a", "b"], "passingonly": true})
        );
        let args = parse(&["--key=k"]);
        assert_eq!(
            watch_params(&args).unwrap_err(),
            "Watch type must be specified"
        );
        let args = parse(&["--type=service", "--passingonly=maybe"]);
        assert!(
            watch_params(&args)
                .unwrap_err()
                .starts_with("Failed to parse passingonly flag")
        );
    }
}
