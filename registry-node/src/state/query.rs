//! Prepared queries, pure: validation, resolution of an ID or name to a
//! (rendered) query, and execution against a [`Store`]. Kept apart from the
//! HTTP layer so `.query.consul` DNS lookups can share it.
//!
//! Not implemented: `Near` sorting (there are no network coordinates, so
//! results are always shuffled, as Consul does without `Near`) and failover to
//! other datacenters (a single datacenter: `Failovers` is always 0).

use rand::seq::SliceRandom;
use regex::Regex;
use registry_api::duration::parse_duration;
use registry_api::{
    CRITICAL, CheckServiceNode, Meta, PASSING, PreparedQuery, ServiceQuery,
    TEMPLATE_NAME_PREFIX_MATCH,
};

use super::Store;

/// Checks a definition against Consul's rules and the current state; the
/// error text is the HTTP error body.
pub fn validate(store: &Store, q: &PreparedQuery) -> Result<(), String> {
    if q.service.service.is_empty() {
        return Err("Must provide a Service name to query".into());
    }
    let t = &q.template;
    if !t.template_type.is_empty() && t.template_type != TEMPLATE_NAME_PREFIX_MATCH {
        return Err(format!("Bad Template.Type '{}'", t.template_type));
    }
    if is_template(q) {
        if !t.regexp.is_empty() {
            Regex::new(&t.regexp).map_err(|e| format!("Bad Regexp: {e}"))?;
        }
        // Rendering with the query's own name surfaces unknown expressions now,
        // not at execution time.
        render(q, &q.name)?;
    }
    if !q.dns.ttl.is_empty() {
        parse_duration(&q.dns.ttl).map_err(|e| format!("Bad DNS TTL '{}': {e}", q.dns.ttl))?;
    }
    if !q.session.is_empty() && store.session(&q.session).is_none() {
        return Err(format!("invalid session \"{}\"", q.session));
    }
    let others = || store.prepared_queries().filter(|o| o.id != q.id);
    if !q.name.is_empty() {
        if others().any(|o| o.name.eq_ignore_ascii_case(&q.name)) {
            return Err(format!("name '{}' aliases an existing query name", q.name));
        }
        if others().any(|o| o.id.eq_ignore_ascii_case(&q.name)) {
            return Err(format!("name '{}' aliases an existing query ID", q.name));
        }
    } else if is_template(q) && others().any(|o| is_template(o) && o.name.is_empty()) {
        return Err("a query template with an empty name already exists".into());
    }
    Ok(())
}

/// Whether the query is a template.
pub fn is_template(q: &PreparedQuery) -> bool {
    !q.template.template_type.is_empty()
}

/// Finds the query for an execute/explain/DNS lookup: by ID, then by exact
/// name, then the template with the longest name that prefixes the lookup
/// (an empty-named template catches everything). Templates come back rendered
/// for the looked-up name. Names compare case-insensitively, like DNS.
pub fn resolve(store: &Store, id_or_name: &str) -> Option<PreparedQuery> {
    if id_or_name.is_empty() {
        return None;
    }
    let found = store
        .prepared_query(id_or_name)
        .or_else(|| {
            store
                .prepared_queries()
                .find(|q| !q.name.is_empty() && q.name.eq_ignore_ascii_case(id_or_name))
        })
        .or_else(|| {
            let lookup = id_or_name.to_ascii_lowercase();
            store
                .prepared_queries()
                .filter(|q| is_template(q) && lookup.starts_with(&q.name.to_ascii_lowercase()))
                .max_by_key(|q| q.name.len())
        })?;
    // Definitions were validated on write, so rendering does not fail.
    render(found, id_or_name).ok()
}

/// Renders a template for a looked-up name: `${name.full}`, `${name.prefix}`,
/// `${name.suffix}`, `${match(N)}` (captures of `Regexp`) and
/// `${agent.segment}` (always "") in every string of `Service`.
pub fn render(q: &PreparedQuery, name: &str) -> Result<PreparedQuery, String> {
    if !is_template(q) {
        return Ok(q.clone());
    }
    let captures: Vec<String> = if q.template.regexp.is_empty() {
        Vec::new()
    } else {
        let re = Regex::new(&q.template.regexp).map_err(|e| format!("Bad Regexp: {e}"))?;
        re.captures(name)
            .map(|c| {
                c.iter()
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let vars = Vars {
        full: name,
        prefix: &q.name,
        suffix: name.get(q.name.len()..).unwrap_or(""),
        captures: &captures,
    };
    let mut out = q.clone();
    let s = &mut out.service;
    s.service = vars.interpolate(&s.service)?;
    s.near = vars.interpolate(&s.near)?;
    for v in s
        .tags
        .iter_mut()
        .chain(s.ignore_check_ids.iter_mut())
        .chain(s.failover.datacenters.iter_mut())
        .chain(s.node_meta.values_mut())
        .chain(s.service_meta.values_mut())
    {
        *v = vars.interpolate(v)?;
    }
    if q.template.remove_empty_tags {
        s.tags.retain(|t| !t.is_empty());
    }
    Ok(out)
}

/// Values of the template variables for one lookup.
struct Vars<'a> {
    full: &'a str,
    prefix: &'a str,
    suffix: &'a str,
    captures: &'a [String],
}

impl Vars<'_> {
    fn interpolate(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated expression in \"{text}\""))?;
            out.push_str(&self.eval(after[..end].trim())?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn eval(&self, expr: &str) -> Result<String, String> {
        Ok(match expr {
            "name.full" => self.full.to_string(),
            "name.prefix" => self.prefix.to_string(),
            "name.suffix" => self.suffix.to_string(),
            "agent.segment" => String::new(),
            _ => {
                let n = expr
                    .strip_prefix("match(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .ok_or_else(|| format!("unknown expression \"${{{expr}}}\""))?;
                self.captures.get(n).cloned().unwrap_or_default()
            }
        })
    }
}

/// Runs a resolved query: the healthy, matching instances of its service,
/// shuffled, at most `limit` of them.
pub fn execute(store: &Store, q: &PreparedQuery, limit: Option<usize>) -> Vec<CheckServiceNode> {
    let mut rows = filter_nodes(store.health_service(&q.service.service), &q.service);
    rows.shuffle(&mut rand::rng());
    if let Some(limit) = limit.filter(|&l| l > 0) {
        rows.truncate(limit);
    }
    rows
}

/// Keeps the instances that pass the query's health, tag and metadata filters.
pub fn filter_nodes(rows: Vec<CheckServiceNode>, s: &ServiceQuery) -> Vec<CheckServiceNode> {
    rows.into_iter()
        .filter(|r| healthy(r, s) && tags_match(&r.service.tags, &s.tags))
        .filter(|r| meta_match(&r.node.meta, &s.node_meta))
        .filter(|r| meta_match(&r.service.meta, &s.service_meta))
        .collect()
}

/// Critical checks always exclude an instance, warning ones with
/// `OnlyPassing`; ignored check IDs never count.
fn healthy(r: &CheckServiceNode, s: &ServiceQuery) -> bool {
    r.checks
        .iter()
        .filter(|c| !s.ignore_check_ids.contains(&c.check_id))
        .all(|c| c.status != CRITICAL && (!s.only_passing || c.status == PASSING))
}

/// Every plain tag must be present and no `!tag` may be (case-insensitive, as Consul).
fn tags_match(tags: &[String], wanted: &[String]) -> bool {
    let has = |t: &str| tags.iter().any(|x| x.eq_ignore_ascii_case(t));
    wanted.iter().all(|w| match w.strip_prefix('!') {
        Some(excluded) => !has(excluded),
        None => has(w),
    })
}

fn meta_match(meta: &Meta, wanted: &Meta) -> bool {
    wanted.iter().all(|(k, v)| meta.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use registry_api::{HealthCheck, Node, NodeService, QueryTemplate, SessionEntry, WARNING};

    use super::*;
    use crate::state::{Command, Request, Response};

    fn query(id: &str, name: &str, service: &str) -> PreparedQuery {
        PreparedQuery {
            id: id.into(),
            name: name.into(),
            service: ServiceQuery {
                service: service.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn template(id: &str, name: &str, service: &str, regexp: &str) -> PreparedQuery {
        PreparedQuery {
            template: QueryTemplate {
                template_type: TEMPLATE_NAME_PREFIX_MATCH.into(),
                regexp: regexp.into(),
                remove_empty_tags: false,
            },
            ..query(id, name, service)
        }
    }

    fn apply(store: &mut Store, cmd: Command) -> Response {
        let index = store.index() + 1;
        store.apply(index, &Request { now_ms: 0, cmd })
    }

    fn create(store: &mut Store, q: PreparedQuery) -> Response {
        apply(store, Command::QueryCreate(Box::new(q)))
    }

    fn row(node: &str, tags: &[&str], checks: &[(&str, &str)]) -> CheckServiceNode {
        CheckServiceNode {
            node: Node {
                node: node.into(),
                ..Default::default()
            },
            service: NodeService {
                id: "web".into(),
                service: "web".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            checks: checks
                .iter()
                .map(|(id, status)| HealthCheck {
                    node: node.into(),
                    check_id: id.to_string(),
                    status: status.to_string(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn nodes(rows: &[CheckServiceNode]) -> Vec<&str> {
        let mut n: Vec<&str> = rows.iter().map(|r| r.node.node.as_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn create_update_delete_keep_indexes() {
        let mut s = Store::default();
        assert_eq!(create(&mut s, query("q1", "web", "web")), Response::Ok);
        let q = s.prepared_query("q1").unwrap();
        assert_eq!((q.create_index, q.modify_index), (1, 1));
        assert_eq!(s.view_index(&[crate::state::WatchKey::PreparedQueries]), 1);
        let updated = query("q1", "web", "web2");
        let r = apply(&mut s, Command::QueryUpdate(Box::new(updated)));
        assert_eq!(r, Response::Ok);
        let q = s.prepared_query("q1").unwrap();
        assert_eq!((q.create_index, q.modify_index), (1, 2));
        assert_eq!(q.service.service, "web2");
        let r = apply(
            &mut s,
            Command::QueryUpdate(Box::new(query("nope", "", "x"))),
        );
        assert!(matches!(r, Response::Error(e) if e.contains("non-existent")));
        apply(&mut s, Command::QueryDelete { id: "q1".into() });
        assert!(s.prepared_query("q1").is_none());
    }

    #[test]
    fn validation_follows_consul() {
        let mut s = Store::default();
        create(&mut s, query("q1", "web", "web"));
        let err = |s: &Store, q: PreparedQuery| validate(s, &q).unwrap_err();
        assert!(err(&s, query("q2", "x", "")).contains("Must provide a Service name"));
        assert!(err(&s, query("q2", "WEB", "web")).contains("aliases an existing query name"));
        assert!(err(&s, query("q2", "q1", "web")).contains("aliases an existing query ID"));
        assert!(
            validate(&s, &query("q1", "web", "other")).is_ok(),
            "own name"
        );
        let mut bad = template("q2", "t", "web", "(");
        assert!(err(&s, bad.clone()).contains("Bad Regexp"));
        bad.template.regexp = String::new();
        bad.service.service = "${nope}".into();
        assert!(err(&s, bad).contains("unknown expression"));
        let mut bad = query("q2", "", "web");
        bad.template.template_type = "other".into();
        assert!(err(&s, bad).contains("Bad Template.Type"));
        let mut bad = query("q2", "", "web");
        bad.session = "missing".into();
        assert!(err(&s, bad).contains("invalid session"));
        create(&mut s, template("t1", "", "web", ""));
        assert!(err(&s, template("t2", "", "web", "")).contains("empty name already exists"));
    }

    #[test]
    fn resolution_order_and_templates() {
        let mut s = Store::default();
        create(&mut s, query("q1", "geo-db", "exact"));
        create(&mut s, template("t1", "", "catch-${name.full}", ""));
        let mut t = template("t2", "geo-", "${match(1)}", r"^geo-(\w+)-?(\w*)$");
        t.service.tags = vec!["${match(2)}".into(), "x-${name.suffix}".into()];
        t.template.remove_empty_tags = true;
        create(&mut s, t);
        assert_eq!(resolve(&s, "q1").unwrap().service.service, "exact");
        assert_eq!(resolve(&s, "GEO-DB").unwrap().service.service, "exact");
        let r = resolve(&s, "geo-web-primary").unwrap();
        assert_eq!(r.service.service, "web");
        assert_eq!(r.service.tags, vec!["primary", "x-web-primary"]);
        let r = resolve(&s, "geo-api").unwrap();
        assert_eq!(r.service.tags, vec!["x-api"], "empty tag removed");
        assert_eq!(resolve(&s, "other").unwrap().service.service, "catch-other");
        assert!(resolve(&s, "").is_none());
        apply(&mut s, Command::QueryDelete { id: "t1".into() });
        assert!(resolve(&s, "other").is_none());
    }

    #[test]
    fn filters_health_tags_and_meta() {
        let rows = vec![
            row("a", &["v1", "primary"], &[("serfHealth", PASSING)]),
            row("b", &["v1"], &[("serfHealth", PASSING), ("svc", WARNING)]),
            row("c", &["v1"], &[("svc", CRITICAL)]),
            row("d", &["V1", "canary"], &[]),
        ];
        let mut sq = ServiceQuery::default();
        assert_eq!(nodes(&filter_nodes(rows.clone(), &sq)), ["a", "b", "d"]);
        sq.only_passing = true;
        assert_eq!(nodes(&filter_nodes(rows.clone(), &sq)), ["a", "d"]);
        sq.ignore_check_ids = vec!["svc".into()];
        assert_eq!(
            nodes(&filter_nodes(rows.clone(), &sq)),
            ["a", "b", "c", "d"]
        );
        sq.tags = vec!["v1".into(), "!canary".into()];
        assert_eq!(nodes(&filter_nodes(rows.clone(), &sq)), ["a", "b", "c"]);
        let mut with_meta = rows;
        with_meta[0].node.meta.insert("rack".into(), "r1".into());
        sq.node_meta.insert("rack".into(), "r1".into());
        assert_eq!(nodes(&filter_nodes(with_meta.clone(), &sq)), ["a"]);
        sq.service_meta.insert("env".into(), "prod".into());
        assert!(filter_nodes(with_meta, &sq).is_empty());
    }

    #[test]
    fn session_invalidation_deletes_query_and_old_snapshots_load() {
        let mut s = Store::default();
        s.sessions.insert(
            "s1".into(),
            SessionEntry {
                id: "s1".into(),
                ..Default::default()
            },
        );
        let mut q = query("q1", "", "web");
        q.session = "s1".into();
        assert_eq!(create(&mut s, q), Response::Ok);
        apply(&mut s, Command::SessionDestroy { id: "s1".into() });
        assert!(s.prepared_query("q1").is_none());

        let mut old: serde_json::Value = serde_json::from_slice(&s.to_snapshot()).unwrap();
        old.as_object_mut().unwrap().remove("queries");
        let restored = Store::from_snapshot(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(restored.prepared_queries().count(), 0);
    }
}
