//! Config sources: files, directories and inline `-hcl` text, parsed into JSON
//! values and merged the way Consul merges them.

use std::path::{Path, PathBuf};

use registry_api::{AgentServiceRegistration, CheckDefinition};
use serde_json::{Map, Value};

use super::flags::ConfigFormat;
use super::{Config, ConfigError, de};

/// One parsed configuration source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// File path, or a label for inline sources (`-hcl`, `command line flags`).
    pub name: String,
    /// The source's keys, with `service`/`check` blocks gathered into lists.
    pub value: Value,
}

impl Source {
    /// Parses `text` as JSON or HCL and gathers its service and check blocks.
    pub fn parse(name: &str, text: &str, format: ConfigFormat) -> Result<Source, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            source_name: name.to_string(),
            key: String::new(),
            message,
        };
        let value: Value = match format {
            ConfigFormat::Json => {
                serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?
            }
            ConfigFormat::Hcl => hcl::from_str(text).map_err(|e| parse_error(e.to_string()))?,
        };
        Source::from_value(name, value)
    }

    /// Wraps an already built value (dev defaults, flags).
    pub fn from_value(name: &str, value: Value) -> Result<Source, ConfigError> {
        let Value::Object(mut map) = value else {
            return Err(ConfigError::Parse {
                source_name: name.to_string(),
                key: String::new(),
                message: "the configuration must be an object".to_string(),
            });
        };
        gather_definitions(name, &mut map)?;
        Ok(Source {
            name: name.to_string(),
            value: Value::Object(map),
        })
    }

    /// Checks every key and value of this source on its own.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        de::from_value::<Config>(self.value.clone())
            .map(drop)
            .map_err(|e| ConfigError::Parse {
                source_name: self.name.clone(),
                key: e.path(),
                message: e.to_string(),
            })
    }
}

/// Reads a file, or every `*.json` / `*.hcl` file of a directory in lexical order
/// (not recursive), as Consul's `-config-file` / `-config-dir` do.
pub(super) fn read_path(
    path: &Path,
    format: Option<ConfigFormat>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Source>, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_dir() {
        return Ok(read_file(path, format, warnings)?.into_iter().collect());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry_path = entry.map_err(read_error)?.path();
        // Follows symlinks: a link to a file counts as a file, as in Consul.
        if std::fs::metadata(&entry_path)
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            files.push(entry_path);
        }
    }
    files.sort();
    let mut sources = Vec::new();
    for file in files {
        // In a directory, files of other types are skipped silently (editor backups, READMEs).
        if format.is_none() && ConfigFormat::from_path(&file).is_none() {
            continue;
        }
        sources.extend(read_file(&file, format, warnings)?);
    }
    Ok(sources)
}

/// Reads one file; `None` (with a warning) when its format cannot be told.
fn read_file(
    path: &Path,
    format: Option<ConfigFormat>,
    warnings: &mut Vec<String>,
) -> Result<Option<Source>, ConfigError> {
    let Some(format) = format.or_else(|| ConfigFormat::from_path(path)) else {
        warnings.push(format!(
            "skipping file {}, extension must be .hcl or .json, or config format must be set",
            path.display()
        ));
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Source::parse(&path.display().to_string(), &text, format).map(Some)
}

/// Merges `src` into `dst`: objects key by key, lists appended, scalars replaced.
pub(super) fn merge(dst: &mut Value, src: Value) {
    match (dst, src) {
        (Value::Object(dst), Value::Object(src)) => {
            for (key, value) in src {
                match dst.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        dst.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(dst), Value::Array(src)) => dst.extend(src),
        (dst, src) => *dst = src,
    }
}

/// Consul's service definition keys (compared case- and underscore-insensitively).
const SERVICE_KEYS: &[&str] = &[
    "name",
    "id",
    "tags",
    "address",
    "tagged_addresses",
    "meta",
    "port",
    "socket_path",
    "enable_tag_override",
    "weights",
    "kind",
    "proxy",
    "connect",
    "check",
    "checks",
    "token",
    "namespace",
    "partition",
    "locality",
];

/// Consul's check definition keys (compared case- and underscore-insensitively).
const CHECK_KEYS: &[&str] = &[
    "id",
    "check_id",
    "name",
    "notes",
    "service_id",
    "status",
    "interval",
    "timeout",
    "ttl",
    "args",
    "script_args",
    "http",
    "method",
    "header",
    "body",
    "disable_redirects",
    "tls_server_name",
    "tls_skip_verify",
    "tcp",
    "tcp_use_tls",
    "udp",
    "grpc",
    "grpc_use_tls",
    "h2ping",
    "h2ping_use_tls",
    "docker_container_id",
    "shell",
    "alias_node",
    "alias_service",
    "os_service",
    "deregister_critical_service_after",
    "success_before_passing",
    "failures_before_warning",
    "failures_before_critical",
    "output_max_size",
    "token",
    "namespace",
    "partition",
];

/// Folds a key the way the API decoder matches names.
fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn known(key: &str, keys: &[&str]) -> bool {
    let folded = fold(key);
    keys.iter().any(|k| fold(k) == folded)
}

/// Takes `single` (an object, or a list from repeated HCL blocks) and `list`
/// out of `map`, returning `single` entries first and then `list` entries.
fn take_definitions(
    map: &mut Map<String, Value>,
    single: &str,
    list: &str,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    // Consul appends the single `service` after the `services` list.
    for key in [list, single] {
        let found = map.keys().find(|k| fold(k) == fold(key)).cloned();
        let Some(found) = found else { continue };
        match map.remove(&found) {
            Some(Value::Array(items)) => out.extend(items),
            Some(Value::Object(obj)) => out.push(Value::Object(obj)),
            Some(Value::Null) | None => {}
            Some(_) => return Err(format!("{key}: expected an object or a list of objects")),
        }
    }
    Ok(out)
}

/// Moves `service`/`services` into `services` and `check`/`checks` into `checks`,
/// validating each definition (unknown keys, types, check kinds).
fn gather_definitions(name: &str, map: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let error = |key: String, message: String| ConfigError::Parse {
        source_name: name.to_string(),
        key,
        message,
    };
    let services =
        take_definitions(map, "service", "services").map_err(|m| error("service".into(), m))?;
    if !services.is_empty() {
        let mut normalized = Vec::with_capacity(services.len());
        for (index, raw) in services.into_iter().enumerate() {
            let fallback = format!("services[{index}]");
            let (value, _) =
                service_value(raw, &fallback).map_err(|(key, message)| error(key, message))?;
            normalized.push(value);
        }
        map.insert("services".to_string(), Value::Array(normalized));
    }
    let checks = take_definitions(map, "check", "checks").map_err(|m| error("check".into(), m))?;
    if !checks.is_empty() {
        for (index, raw) in checks.iter().enumerate() {
            check_definition(raw.clone(), "check")
                .map_err(|(key, message)| error(key, format!("checks[{index}]: {message}")))?;
        }
        map.insert("checks".to_string(), Value::Array(checks));
    }
    Ok(())
}

/// Parses one service definition as written in a config file (snake_case or
/// CamelCase keys), the way the agent registers it.
pub fn parse_service_definition(value: Value) -> Result<AgentServiceRegistration, String> {
    service_value(value, "service")
        .map(|(_, service)| service)
        .map_err(|(_, message)| message)
}

/// Validates a raw service object. Returns it with repeated `check` blocks folded
/// into `checks`, and its decoded form; errors are (key path, message).
fn service_value(
    raw: Value,
    fallback_label: &str,
) -> Result<(Value, AgentServiceRegistration), (String, String)> {
    let Value::Object(mut map) = raw else {
        let message = format!("{fallback_label}: a service definition must be an object");
        return Err(("service".into(), message));
    };
    // Errors name the service when it has a name: `service "web3": ...`.
    let label = map
        .iter()
        .find(|(k, _)| fold(k) == "name")
        .and_then(|(_, v)| v.as_str())
        .map(|n| format!("service \"{n}\""))
        .unwrap_or_else(|| fallback_label.to_string());
    let fail = |key: &str, message: String| {
        let path = if key.is_empty() {
            "service".to_string()
        } else {
            format!("service.{key}")
        };
        (path, format!("{label}: {message}"))
    };
    if let Some(key) = map.keys().find(|k| !known(k, SERVICE_KEYS)) {
        return Err(fail(key, format!("unknown field \"{key}\"")));
    }
    // `check` may be a list when HCL has several `check { }` blocks: fold it into
    // `checks`, single check first, as Consul numbers them.
    let checks = take_definitions(&mut map, "check", "checks").map_err(|m| fail("check", m))?;
    let mut decoded_checks = Vec::with_capacity(checks.len());
    for (index, check) in checks.iter().enumerate() {
        let decoded = check_definition(check.clone(), "service check")
            .map_err(|(_, m)| fail("checks", format!("checks[{index}]: {m}")))?;
        decoded_checks.push(decoded);
    }
    if !checks.is_empty() {
        map.insert("checks".to_string(), Value::Array(checks));
    }
    let value = Value::Object(map);
    let service: AgentServiceRegistration =
        registry_api::decode::from_value(value.clone()).map_err(|e| fail("", e.to_string()))?;
    if service.name.trim().is_empty() {
        return Err(fail("name", "missing service name".into()));
    }
    Ok((value, service))
}

/// Validates one check object: known keys, value types and a usable check kind.
fn check_definition(raw: Value, what: &str) -> Result<CheckDefinition, (String, String)> {
    let Value::Object(map) = &raw else {
        return Err(("check".into(), format!("a {what} must be an object")));
    };
    if let Some(key) = map.keys().find(|k| !known(k, CHECK_KEYS)) {
        return Err((format!("check.{key}"), format!("unknown field \"{key}\"")));
    }
    let check: CheckDefinition =
        registry_api::decode::from_value(raw).map_err(|e| ("check".to_string(), e.to_string()))?;
    check.validate().map_err(|m| ("check".to_string(), m))?;
    Ok(check)
}
