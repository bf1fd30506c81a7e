//! Dependencies: the data sources a template reads, parsed from the query
//! strings of consul-template's API functions (`service "tag.web@dc1|any"`).
//!
//! A [`Dependency`] is a value (Hash + Ord) so the watcher can keep exactly one
//! blocking query per unique dependency; [`Dependency::source`] says what to
//! fetch. The grammar follows consul-template's regular expressions
//! (`dependency/dependency.go`) so the same strings are accepted and rejected.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Health filter of a `service` query; consul-template's default is `passing`.
pub const DEFAULT_FILTER: &str = "passing";

/// The health filters a `service` query accepts.
const FILTERS: [&str; 5] = ["any", "passing", "warning", "critical", "maintenance"];

// Building blocks, as in upstream (`[[:word:]]` is ASCII there and here).
const DC_RE: &str = r"(@(?P<dc>[[:word:]\.\-\_]+))?";
const KEY_RE: &str = r"/?(?P<key>[^@\?]+)";
const FILTER_RE: &str = r"(\|(?P<filter>[[:word:]\,]+))?";
const SERVICE_NAME_RE: &str = r"(?P<name>[[:word:]\-\_]+)";
const QUERY_RE: &str = r"(\?(?P<query>[[:word:]\-\_\=\&]+))?";
const NODE_NAME_RE: &str = r"(?P<name>[[:word:]\.\-\_]+)";
const NEAR_RE: &str = r"(~(?P<near>[[:word:]\.\-\_]+))?";
const PREFIX_RE: &str = r"/?(?P<prefix>[^@\?]+)";
const TAG_RE: &str = r"((?P<tag>[[:word:]=:\.\-\_]+)\.)?";

fn anchored(parts: &[&str]) -> Regex {
    Regex::new(&format!(r"\A{}\z", parts.concat())).expect("static regex")
}

static HEALTH_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(&[TAG_RE, SERVICE_NAME_RE, QUERY_RE, DC_RE, NEAR_RE, FILTER_RE]));
static CATALOG_SERVICE_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(&[TAG_RE, SERVICE_NAME_RE, QUERY_RE, DC_RE, NEAR_RE]));
static CATALOG_SERVICES_RE: LazyLock<Regex> = LazyLock::new(|| anchored(&[QUERY_RE, DC_RE]));
static CATALOG_NODES_RE: LazyLock<Regex> = LazyLock::new(|| anchored(&[QUERY_RE, DC_RE, NEAR_RE]));
static CATALOG_NODE_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(&[NODE_NAME_RE, QUERY_RE, DC_RE]));
static KV_GET_RE: LazyLock<Regex> = LazyLock::new(|| anchored(&[KEY_RE, QUERY_RE, DC_RE]));
static KV_LIST_RE: LazyLock<Regex> = LazyLock::new(|| anchored(&[PREFIX_RE, QUERY_RE, DC_RE]));

/// A query string that does not follow the grammar. The message is
/// consul-template's (`health.service: invalid format: "a b"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Consul scoping carried by `?ns=&partition=&peer=&sameness-group=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// `@dc`.
    pub dc: Option<String>,
    /// `?ns=`.
    pub namespace: Option<String>,
    /// `?partition=`.
    pub partition: Option<String>,
    /// `?peer=` (service queries only).
    pub peer: Option<String>,
    /// `?sameness-group=` (service queries only).
    pub sameness_group: Option<String>,
}

impl Scope {
    fn params(&self, out: &mut Vec<(String, String)>) {
        let pairs = [
            ("dc", &self.dc),
            ("ns", &self.namespace),
            ("partition", &self.partition),
            ("peer", &self.peer),
            ("sameness-group", &self.sameness_group),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        }
    }

    /// Upstream's `String()` suffixes (`@dc1@ns=x`), used for display only.
    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(dc) = &self.dc {
            s += &format!("@{dc}");
        }
        for (k, v) in [
            ("partition", &self.partition),
            ("ns", &self.namespace),
            ("peer", &self.peer),
            ("sameness-group", &self.sameness_group),
        ] {
            if let Some(v) = v {
                s += &format!("@{k}={v}");
            }
        }
        s
    }
}

/// One data source of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// `service`/`connect`: `/v1/health/service/<name>` (or `/v1/health/connect/`).
    HealthService {
        /// Service name.
        name: String,
        /// `tag.` prefix.
        tag: Option<String>,
        /// `~near` (keeps Consul's RTT order).
        near: Option<String>,
        /// Sorted, de-duplicated health filters (`["passing"]` by default).
        filters: Vec<String>,
        /// `connect` instead of `service`.
        connect: bool,
        /// dc / namespace / partition / peer.
        scope: Scope,
    },
    /// `catalogService`: `/v1/catalog/service/<name>`.
    CatalogService {
        /// Service name.
        name: String,
        /// `tag.` prefix.
        tag: Option<String>,
        /// `~near`.
        near: Option<String>,
        /// dc / namespace / partition.
        scope: Scope,
    },
    /// `services`: `/v1/catalog/services`.
    CatalogServices {
        /// dc / namespace / partition.
        scope: Scope,
    },
    /// `nodes`: `/v1/catalog/nodes`.
    CatalogNodes {
        /// `~near`.
        near: Option<String>,
        /// dc / namespace / partition.
        scope: Scope,
    },
    /// `node`: `/v1/catalog/node/<name>`; `None` = the local agent's node.
    CatalogNode {
        /// Node name.
        name: Option<String>,
        /// dc / namespace / partition.
        scope: Scope,
    },
    /// `datacenters`: `/v1/catalog/datacenters` (polled, not blocking).
    Datacenters {
        /// `datacenters true`: drop unreachable datacenters.
        ignore_inaccessible: bool,
    },
    /// `key`, `keyExists`, `keyOrDefault`: `/v1/kv/<path>`. All three share one
    /// dependency; only `key` treats "no such key" as missing data.
    Key {
        /// Key path, leading `/` stripped.
        path: String,
        /// dc / namespace / partition.
        scope: Scope,
    },
    /// `ls`, `tree`, `safeLs`, `safeTree`: `/v1/kv/<prefix>?recurse`.
    KeyPrefix {
        /// Prefix, leading `/` stripped.
        prefix: String,
        /// dc / namespace / partition.
        scope: Scope,
    },
    /// `file`: a local file (stat-polled, not a Consul query).
    File {
        /// Path as written in the template (trimmed).
        path: String,
    },
}

/// What the watcher must do to get a dependency's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An HTTP GET against Consul: `path` (not yet percent-encoded) plus query
    /// parameters; add `index`/`wait`/`stale` when `blocking`.
    Consul {
        /// URL path, e.g. `/v1/health/service/web`.
        path: String,
        /// Query parameters (`dc`, `tag`, `passing`, `recurse`, `near`, ...).
        params: Vec<(String, String)>,
        /// Whether this endpoint supports blocking queries (`datacenters` does not).
        blocking: bool,
    },
    /// `node ""`: first learn the local node name from `GET /v1/agent/self`
    /// (`Config.NodeName`), then GET `/v1/catalog/node/<name>` with `params`.
    ConsulLocalNode {
        /// Query parameters.
        params: Vec<(String, String)>,
    },
    /// Read a local file.
    File(String),
}

struct Captures<'a>(regex::Captures<'a>);

impl Captures<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .name(name)
            .map(|m| m.as_str().to_string())
            .filter(|s| !s.is_empty())
    }
}

fn capture<'a>(re: &Regex, s: &'a str, label: &str) -> Result<Captures<'a>, QueryError> {
    re.captures(s)
        .map(Captures)
        .ok_or_else(|| QueryError(format!("{label}: invalid format: {s:?}")))
}

/// Parses `?ns=a&partition=b` into a scope (with `dc`); other keys are errors.
fn scope(m: &Captures<'_>, label: &str, services: bool) -> Result<Scope, QueryError> {
    let mut scope = Scope {
        dc: m.get("dc"),
        ..Scope::default()
    };
    if let Some(raw) = m.get("query") {
        for (k, v) in form_pairs(&raw) {
            let slot = match k.as_str() {
                "ns" => &mut scope.namespace,
                "partition" => &mut scope.partition,
                "peer" => &mut scope.peer,
                "sameness-group" => &mut scope.sameness_group,
                _ => {
                    return Err(QueryError(format!(
                        "{label}: invalid query parameter key {k:?} in query {raw:?}: supported keys: ns,peer,partition,sameness-group"
                    )));
                }
            };
            // url.Values.Get returns the first value.
            if slot.is_none() && !v.is_empty() {
                *slot = Some(v);
            }
        }
    }
    if !services {
        // Upstream reads only ns and partition for non-service queries.
        scope.peer = None;
        scope.sameness_group = None;
    }
    Ok(scope)
}

/// `a=b&c=d` (the query grammar allows no percent escapes, so none are decoded).
fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

impl Dependency {
    /// `service`/`connect` query: `[tag.]name[?query][@dc][~near][|filter,...]`.
    pub fn health_service(s: &str, connect: bool) -> Result<Self, QueryError> {
        let label = if connect {
            "health.connect"
        } else {
            "health.service"
        };
        let m = capture(&HEALTH_RE, s, "health.service")?;
        let filters = match m.get("filter") {
            Some(raw) => {
                let mut filters = Vec::new();
                for f in raw.split(',').map(str::trim) {
                    if f.is_empty() {
                        continue;
                    }
                    if !FILTERS.contains(&f) {
                        return Err(QueryError(format!(
                            "health.service: invalid filter: {f:?} in {s:?}"
                        )));
                    }
                    filters.push(f.to_string());
                }
                filters.sort();
                filters
            }
            None => vec![DEFAULT_FILTER.to_string()],
        };
        let scope = scope(&m, label, true)?;
        if scope.peer.is_some() && scope.sameness_group.is_some() {
            return Err(QueryError(
                "health.service: cannot specify both peer and sameness-group".into(),
            ));
        }
        Ok(Dependency::HealthService {
            name: m.get("name").unwrap_or_default(),
            tag: m.get("tag"),
            near: m.get("near"),
            filters,
            connect,
            scope,
        })
    }

    /// `catalogService` query: `[tag.]name[?query][@dc][~near]`.
    pub fn catalog_service(s: &str) -> Result<Self, QueryError> {
        let m = capture(&CATALOG_SERVICE_RE, s, "catalog.service")?;
        Ok(Dependency::CatalogService {
            name: m.get("name").unwrap_or_default(),
            tag: m.get("tag"),
            near: m.get("near"),
            scope: scope(&m, "catalog.service", false)?,
        })
    }

    /// `services` query: `[?query][@dc]`.
    pub fn catalog_services(s: &str) -> Result<Self, QueryError> {
        let m = capture(&CATALOG_SERVICES_RE, s, "catalog.services")?;
        Ok(Dependency::CatalogServices {
            scope: scope(&m, "catalog.services", false)?,
        })
    }

    /// `nodes` query: `[?query][@dc][~near]`.
    pub fn catalog_nodes(s: &str) -> Result<Self, QueryError> {
        let m = capture(&CATALOG_NODES_RE, s, "catalog.nodes")?;
        Ok(Dependency::CatalogNodes {
            near: m.get("near"),
            scope: scope(&m, "catalog.nodes", false)?,
        })
    }

    /// `node` query: `[name][?query][@dc]`; empty = the local agent's node.
    pub fn catalog_node(s: &str) -> Result<Self, QueryError> {
        if s.is_empty() {
            return Ok(Dependency::CatalogNode {
                name: None,
                scope: Scope::default(),
            });
        }
        let m = capture(&CATALOG_NODE_RE, s, "catalog.node")?;
        Ok(Dependency::CatalogNode {
            name: m.get("name"),
            scope: scope(&m, "catalog.node", false)?,
        })
    }

    /// `key`/`keyExists`/`keyOrDefault` query: `path[?query][@dc]`.
    pub fn key(s: &str) -> Result<Self, QueryError> {
        let m = capture(&KV_GET_RE, s, "kv.get")?;
        Ok(Dependency::Key {
            path: m.get("key").unwrap_or_default(),
            scope: scope(&m, "kv.get", false)?,
        })
    }

    /// `ls`/`tree` query: `prefix[?query][@dc]`.
    pub fn key_prefix(s: &str) -> Result<Self, QueryError> {
        let m = capture(&KV_LIST_RE, s, "kv.list")?;
        Ok(Dependency::KeyPrefix {
            prefix: m.get("prefix").unwrap_or_default(),
            scope: scope(&m, "kv.list", false)?,
        })
    }

    /// `file` query: the trimmed path.
    pub fn file(s: &str) -> Result<Self, QueryError> {
        let path = s.trim();
        if path.is_empty() {
            return Err(QueryError("file: invalid format: \"\"".into()));
        }
        Ok(Dependency::File {
            path: path.to_string(),
        })
    }

    /// What to fetch for this dependency.
    pub fn source(&self) -> Source {
        let mut params = Vec::new();
        let consul = |path: String, params: Vec<(String, String)>| Source::Consul {
            path,
            params,
            blocking: true,
        };
        match self {
            Dependency::HealthService {
                name,
                tag,
                near,
                filters,
                connect,
                scope,
            } => {
                scope.params(&mut params);
                if let Some(near) = near {
                    params.push(("near".into(), near.clone()));
                }
                if let Some(tag) = tag {
                    params.push(("tag".into(), tag.clone()));
                }
                if filters.len() == 1 && filters[0] == "passing" {
                    params.push(("passing".into(), "1".into()));
                }
                let kind = if *connect { "connect" } else { "service" };
                consul(format!("/v1/health/{kind}/{name}"), params)
            }
            Dependency::CatalogService {
                name,
                tag,
                near,
                scope,
            } => {
                scope.params(&mut params);
                if let Some(near) = near {
                    params.push(("near".into(), near.clone()));
                }
                if let Some(tag) = tag {
                    params.push(("tag".into(), tag.clone()));
                }
                consul(format!("/v1/catalog/service/{name}"), params)
            }
            Dependency::CatalogServices { scope } => {
                scope.params(&mut params);
                consul("/v1/catalog/services".into(), params)
            }
            Dependency::CatalogNodes { near, scope } => {
                scope.params(&mut params);
                if let Some(near) = near {
                    params.push(("near".into(), near.clone()));
                }
                consul("/v1/catalog/nodes".into(), params)
            }
            Dependency::CatalogNode { name, scope } => {
                scope.params(&mut params);
                match name {
                    Some(name) => consul(format!("/v1/catalog/node/{name}"), params),
                    None => Source::ConsulLocalNode { params },
                }
            }
            Dependency::Datacenters { .. } => Source::Consul {
                path: "/v1/catalog/datacenters".into(),
                params,
                blocking: false,
            },
            Dependency::Key { path, scope } => {
                scope.params(&mut params);
                consul(format!("/v1/kv/{path}"), params)
            }
            Dependency::KeyPrefix { prefix, scope } => {
                scope.params(&mut params);
                params.push(("recurse".into(), String::new()));
                consul(format!("/v1/kv/{prefix}"), params)
            }
            Dependency::File { path } => Source::File(path.clone()),
        }
    }
}

impl fmt::Display for Dependency {
    /// consul-template's dependency names (`health.service(web|passing)`), for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt =
            |p: &str, v: &Option<String>| v.as_ref().map(|v| format!("{p}{v}")).unwrap_or_default();
        match self {
            Dependency::HealthService {
                name,
                tag,
                near,
                filters,
                connect,
                scope,
            } => {
                let tag = tag.as_ref().map(|t| format!("{t}.")).unwrap_or_default();
                let kind = if *connect { "connect" } else { "service" };
                write!(
                    f,
                    "health.{kind}({tag}{name}{}{}|{})",
                    scope.suffix(),
                    opt("~", near),
                    filters.join(",")
                )
            }
            Dependency::CatalogService {
                name,
                tag,
                near,
                scope,
            } => {
                let tag = tag.as_ref().map(|t| format!("{t}.")).unwrap_or_default();
                write!(
                    f,
                    "catalog.service({tag}{name}{}{})",
                    scope.suffix(),
                    opt("~", near)
                )
            }
            Dependency::CatalogServices { scope } => {
                write!(f, "catalog.services({})", scope.suffix())
            }
            Dependency::CatalogNodes { near, scope } => {
                write!(f, "catalog.nodes({}{})", scope.suffix(), opt("~", near))
            }
            Dependency::CatalogNode { name, scope } => write!(
                f,
                "catalog.node({}{})",
                name.as_deref().unwrap_or(""),
                scope.suffix()
            ),
            Dependency::Datacenters {
                ignore_inaccessible,
            } => write!(f, "catalog.datacenters(ignore={ignore_inaccessible})"),
            Dependency::Key { path, scope } => write!(f, "kv.get({path}{})", scope.suffix()),
            Dependency::KeyPrefix { prefix, scope } => {
                write!(f, "kv.list({prefix}{})", scope.suffix())
            }
            Dependency::File { path } => write!(f, "file({path})"),
        }
    }
}

#[cfg(test)]
mod tests;
