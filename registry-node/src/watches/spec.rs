//! Watch definitions: the `watches` entries of the agent configuration and the
//! flags of `registry-node watch`, parsed into a [`WatchSpec`].
//!
//! Parsing follows Consul's `watch.ParseExempt`: every key a watch type uses is
//! consumed, and whatever is left over is an error (`Invalid parameters: [..]`),
//! so a `service` key on a `key` watch is caught at start-up rather than ignored.
//! Error texts are Consul's where it has one, and always name the field.

use std::collections::BTreeMap;
use std::time::Duration;

use registry_api::duration::parse_duration;
use serde_json::{Map, Value};

/// Time limit of an HTTP handler when `http_handler_config.timeout` is not set.
pub const DEFAULT_HTTP_HANDLER_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed watch: what to look at, where, and (for agent watches) what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The data view and its parameters.
    pub kind: WatchKind,
    /// `datacenter`: `?dc=` of every query (`None`: the agent's).
    pub datacenter: Option<String>,
    /// `token`: ACL token of every query.
    pub token: Option<String>,
    /// `stale`: let any server answer (not accepted for `event`).
    pub stale: bool,
    /// `args`, `handler` or `handler_type = "http"`. `None` only for the CLI, which
    /// takes its handler from its trailing arguments.
    pub handler: Option<HandlerSpec>,
}

/// The data view of a watch (`type` and its own keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchKind {
    /// `key`: one KV entry (`/v1/kv/:key`); a missing key is JSON `null`.
    Key {
        /// The key.
        key: String,
    },
    /// `keyprefix`: every KV entry under a prefix (`/v1/kv/:prefix?recurse`).
    KeyPrefix {
        /// The prefix.
        prefix: String,
    },
    /// `services`: service names and tags (`/v1/catalog/services`).
    Services,
    /// `nodes`: the catalog's nodes (`/v1/catalog/nodes`).
    Nodes,
    /// `service`: instances with their checks (`/v1/health/service/:name`).
    Service {
        /// Service name.
        service: String,
        /// Instances must carry every one of these tags.
        tags: Vec<String>,
        /// `passingonly`: only instances whose checks all pass.
        passing_only: bool,
    },
    /// `checks`: health checks in a state or of a service.
    Checks {
        /// Which checks.
        target: ChecksTarget,
        /// Only checks of services carrying every one of these tags.
        tags: Vec<String>,
    },
    /// `event`: user events (`/v1/event/list`); the handler gets only new ones.
    Event {
        /// Event name filter; empty means every event.
        name: String,
    },
}

/// The selector of a `checks` watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksTarget {
    /// `state`: `/v1/health/state/:state` (`any` when neither key is given).
    State(String),
    /// `service`: `/v1/health/checks/:service`.
    Service(String),
}

/// What an agent watch runs when its data changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerSpec {
    /// `args`: a program and its arguments, run directly.
    Args(Vec<String>),
    /// `handler` (legacy): a shell command line, run with `sh -c`.
    Shell(String),
    /// `handler_type = "http"`: a request to an HTTP endpoint.
    Http(HttpHandlerConfig),
}

/// `http_handler_config` of an HTTP watch handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHandlerConfig {
    /// `path`: the full URL of the endpoint (required).
    pub path: String,
    /// `method`: HTTP method, `POST` by default.
    pub method: String,
    /// `header`: extra request headers, each with one or more values.
    pub header: BTreeMap<String, Vec<String>>,
    /// `timeout`: time limit of one request, 10s by default.
    pub timeout: Duration,
    /// `tls_skip_verify`: accepted for compatibility; this build has no TLS, so
    /// `https` endpoints are refused at parse time.
    pub tls_skip_verify: bool,
}

impl WatchSpec {
    /// Consul's name of the watch type (`key`, `keyprefix`, ...).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            WatchKind::Key { .. } => "key",
            WatchKind::KeyPrefix { .. } => "keyprefix",
            WatchKind::Services => "services",
            WatchKind::Nodes => "nodes",
            WatchKind::Service { .. } => "service",
            WatchKind::Checks { .. } => "checks",
            WatchKind::Event { .. } => "event",
        }
    }
}

/// Parses one entry of the agent configuration's `watches`: the watch itself and
/// its handler, which is required (`Must define a watch handler`).
pub fn parse_watch(value: &Value) -> Result<WatchSpec, String> {
    parse(value, true)
}

/// Parses a watch without a handler, as `registry-node watch` builds it from its
/// flags (the handler comes from the command line). A handler key is still
/// accepted and parsed.
pub fn parse_watch_query(value: &Value) -> Result<WatchSpec, String> {
    parse(value, false)
}

fn parse(value: &Value, require_handler: bool) -> Result<WatchSpec, String> {
    let Value::Object(object) = value else {
        return Err(format!(
            "Watch definition must be a JSON object, got {}",
            json_kind(value)
        ));
    };
    let mut params = object.clone();

    let datacenter = take_string(&mut params, "datacenter")?.filter(|s| !s.is_empty());
    let token = take_string(&mut params, "token")?.filter(|s| !s.is_empty());
    let watch_type = take_string(&mut params, "type")?.unwrap_or_default();
    if watch_type.is_empty() {
        return Err("Watch type must be specified".into());
    }

    let handler_type = take_string(&mut params, "handler_type")?.unwrap_or_default();
    let http = match handler_type.as_str() {
        "" | "script" => None,
        "http" => {
            let Some(raw) = params.remove("http_handler_config") else {
                return Err("Handler type 'http' requires 'http_handler_config' to be set".into());
            };
            Some(
                parse_http_handler_config(&raw)
                    .map_err(|e| format!("Failed to parse 'http_handler_config': {e}"))?,
            )
        }
        other => {
            return Err(format!(
                "Invalid handler_type {other:?}: must be \"script\" or \"http\""
            ));
        }
    };

    let mut stale = false;
    let kind = match watch_type.as_str() {
        "key" => {
            stale = take_bool(&mut params, "stale")?.unwrap_or(false);
            let key = take_string(&mut params, "key")?.unwrap_or_default();
            if key.is_empty() {
                return Err("Must specify a single key to watch".into());
            }
            WatchKind::Key { key }
        }
        "keyprefix" => {
            stale = take_bool(&mut params, "stale")?.unwrap_or(false);
            let prefix = take_string(&mut params, "prefix")?.unwrap_or_default();
            if prefix.is_empty() {
                return Err("Must specify a single prefix to watch".into());
            }
            WatchKind::KeyPrefix { prefix }
        }
        "services" => {
            stale = take_bool(&mut params, "stale")?.unwrap_or(false);
            WatchKind::Services
        }
        "nodes" => {
            stale = take_bool(&mut params, "stale")?.unwrap_or(false);
            WatchKind::Nodes
        }
        "service" => {
            stale = take_bool(&mut params, "stale")?.unwrap_or(false);
            let service = take_string(&mut params, "service")?.unwrap_or_default();
            if service.is_empty() {
                return Err("Must specify a single service to watch".into());
            }
            let tags = take_string_list(&mut params, "tag")?;
            let passing_only = take_bool(&mut params, "passingonly")?.unwrap_or(false);
            WatchKind::Service {
                service,
                tags,
                passing_only,
            }
        }
        "checks" => {
            stale = take_bool(&mut params, "stale")?.unwrap_or(false);
            let service = take_string(&mut params, "service")?.unwrap_or_default();
            let state = take_string(&mut params, "state")?.unwrap_or_default();
            let target = match (service.is_empty(), state.is_empty()) {
                (false, false) => return Err("Cannot specify service and state".into()),
                (false, true) => ChecksTarget::Service(service),
                (true, false) => ChecksTarget::State(state),
                (true, true) => ChecksTarget::State("any".into()),
            };
            let tags = take_string_list(&mut params, "tag")?;
            WatchKind::Checks { target, tags }
        }
        // Events are agent-local and not served by servers: `stale` does not apply.
        "event" => WatchKind::Event {
            name: take_string(&mut params, "name")?.unwrap_or_default(),
        },
        other => return Err(format!("Unsupported watch type: {other}")),
    };

    let handler = parse_handler(&mut params, http, require_handler)?;

    if !params.is_empty() {
        let bad: Vec<&str> = params.keys().map(String::as_str).collect();
        return Err(format!("Invalid parameters: [{}]", bad.join(" ")));
    }
    Ok(WatchSpec {
        kind,
        datacenter,
        token,
        stale,
        handler,
    })
}

/// The handler keys (`handler`, `args`, and the HTTP config already parsed), with
/// the agent's rules: one handler at most, and one at least when required.
fn parse_handler(
    params: &mut Map<String, Value>,
    http: Option<HttpHandlerConfig>,
    require_handler: bool,
) -> Result<Option<HandlerSpec>, String> {
    let shell = match params.remove("handler") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("Watch handler must be a string".into()),
    };
    let args = match params.remove("args") {
        None => None,
        Some(Value::Array(items)) => {
            let args = items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err("Watch args must be a list of strings".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if args.is_empty() {
                return Err("Watch args must not be empty".into());
            }
            Some(args)
        }
        Some(_) => return Err("Watch args must be a list of strings".into()),
    };
    let count =
        usize::from(shell.is_some()) + usize::from(args.is_some()) + usize::from(http.is_some());
    if count > 1 {
        return Err("Only one watch handler allowed".into());
    }
    let handler = match (shell, args, http) {
        (Some(shell), _, _) => {
            if shell.trim().is_empty() {
                return Err("Watch handler must not be empty".into());
            }
            Some(HandlerSpec::Shell(shell))
        }
        (_, Some(args), _) => Some(HandlerSpec::Args(args)),
        (_, _, Some(http)) => Some(HandlerSpec::Http(http)),
        _ => None,
    };
    if handler.is_none() && require_handler {
        return Err("Must define a watch handler".into());
    }
    Ok(handler)
}

/// Parses `http_handler_config` (Consul decodes it with mapstructure; HCL may hand
/// it over as a one-element list of blocks).
fn parse_http_handler_config(raw: &Value) -> Result<HttpHandlerConfig, String> {
    let object = match raw {
        Value::Object(o) => o,
        Value::Array(items) if items.len() == 1 => match &items[0] {
            Value::Object(o) => o,
            other => return Err(format!("expected an object, got {}", json_kind(other))),
        },
        other => return Err(format!("expected an object, got {}", json_kind(other))),
    };
    let mut params = object.clone();
    let path = take_string(&mut params, "path")?.unwrap_or_default();
    if path.is_empty() {
        return Err("Requires 'path' to be set".into());
    }
    let url = reqwest::Url::parse(&path).map_err(|e| format!("Invalid 'path' {path:?}: {e}"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(format!(
                "Invalid 'path' {path:?}: https is not supported by this build (no TLS)"
            ));
        }
        other => {
            return Err(format!(
                "Invalid 'path' {path:?}: unsupported scheme {other}"
            ));
        }
    }
    let method = take_string(&mut params, "method")?
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "POST".into());
    reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("Invalid 'method' {method:?}"))?;
    let timeout = match take_string(&mut params, "timeout")?.filter(|t| !t.is_empty()) {
        None => DEFAULT_HTTP_HANDLER_TIMEOUT,
        Some(text) => parse_duration(&text).map_err(|e| format!("Failed to parse timeout: {e}"))?,
    };
    let header = match params.remove("header") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(value) => parse_headers(&value)?,
    };
    let tls_skip_verify = take_bool(&mut params, "tls_skip_verify")?.unwrap_or(false);
    if let Some(key) = params.keys().next() {
        return Err(format!("unknown key '{key}'"));
    }
    Ok(HttpHandlerConfig {
        path,
        method,
        header,
        timeout,
        tls_skip_verify,
    })
}

/// `header = { "X-Name": ["v1", "v2"] }`; a single string value is accepted too.
fn parse_headers(value: &Value) -> Result<BTreeMap<String, Vec<String>>, String> {
    let object = match value {
        Value::Object(o) => o,
        Value::Array(items) if items.len() == 1 && items[0].is_object() => {
            items[0].as_object().expect("checked")
        }
        other => {
            return Err(format!(
                "'header' must be an object of name -> [values], got {}",
                json_kind(other)
            ));
        }
    };
    let mut out = BTreeMap::new();
    for (name, values) in object {
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("Invalid header name {name:?} in 'header'"))?;
        let values = match values {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("Values of header {name:?} must be strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(format!("Values of header {name:?} must be strings")),
        };
        for v in &values {
            reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| format!("Invalid value {v:?} of header {name:?}"))?;
        }
        out.insert(name.clone(), values);
    }
    Ok(out)
}

/// Removes a string parameter (Consul's `assignValue`).
fn take_string(params: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match params.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("Expecting {name} to be a string")),
    }
}

/// Removes a boolean parameter (Consul's `assignValueBool`).
fn take_bool(params: &mut Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match params.remove(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(format!("Expecting {name} to be a boolean")),
    }
}

/// Removes a string-or-list parameter (Consul's `assignValueStringSlice`).
fn take_string_list(params: &mut Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    match params.remove(name) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(format!("Index {i} of {name} expected to be string")),
            })
            .collect(),
        Some(_) => Err(format!("Expecting {name} to be a string or []string")),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
