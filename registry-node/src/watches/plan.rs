//! The blocking-query loop of one watch: query, decide whether the view changed,
//! run the handler, block again.
//!
//! A wake-up is not a change: indexes are per table, so unrelated writes (or an
//! identical rewrite of the watched key) wake the query with the same payload.
//! [`ChangeTracker`] compares the JSON itself and lets the handler run only when
//! it differs from the last view handled (and always for the first view, as
//! Consul does). `ModifyIndex` fields are left out of the comparison: rewriting
//! identical data moves them and nothing else, and a handler re-run for that is
//! exactly the churn watch users complain about (Consul compares them too, so
//! it does re-run). It is pure, so the decision is unit-tested without a server.

use std::collections::HashSet;
use std::time::Duration;

use registry_api::client::{Client, ClientError, escape_path, next_index};
use registry_api::{Consistency, QueryMeta, QueryOptions};
use serde_json::Value;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::WatchError;
use super::handler::Handler;
use super::spec::{ChecksTarget, WatchKind, WatchSpec};

/// First retry delay after a failed query; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Sustained query rate allowed per watch (Consul asks clients to rate-limit
/// their blocking loops so a misbehaving index cannot make them spin).
const QUERIES_PER_SEC: f64 = 10.0;
/// Queries allowed back to back before the rate applies.
const QUERY_BURST: f64 = 2.0;

/// Runs `spec` until `token` is cancelled: every time the view's data changes
/// (and once for the first view) `handler` runs with it.
///
/// Query errors are logged and retried with capped exponential back-off; the
/// loop never gives up on them. It returns `Err` only when the handler failed
/// and [`Handler::stops_on_error`] says that ends the watch.
#[tracing::instrument(skip_all, fields(watch = spec.type_name()))]
pub async fn run_watch(
    client: Client,
    spec: WatchSpec,
    handler: Handler,
    token: CancellationToken,
) -> Result<(), WatchError> {
    tracing::info!("watch started");
    let mut tracker = ChangeTracker::new(matches!(spec.kind, WatchKind::Event { .. }));
    let mut limiter = RateLimit::new(Instant::now());
    let mut index = 0u64;
    let mut failures = 0u32;
    loop {
        let pause = limiter.take(Instant::now());
        if !pause.is_zero() {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = sleep(pause) => {}
            }
        }
        let opts = QueryOptions {
            datacenter: spec.datacenter.clone(),
            wait_index: index,
            consistency: if spec.stale {
                Consistency::Stale
            } else {
                Consistency::Default
            },
            token: spec.token.clone(),
            ..QueryOptions::default()
        };
        let result = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            r = fetch(&client, &spec.kind, &opts) => r,
        };
        let (value, meta) = match result {
            Ok(answer) => answer,
            Err(e) => {
                failures += 1;
                let retry = backoff(failures);
                tracing::warn!(error = %e, retry = ?retry, "watch query failed");
                // Start over with a non-blocking read: the index may belong to a
                // server or view we no longer talk to.
                index = 0;
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    _ = sleep(retry) => continue,
                }
            }
        };
        failures = 0;
        index = next_index(index, meta.last_index);
        let Some(data) = tracker.observe(value) else {
            tracing::trace!(index = meta.last_index, "woken without a change");
            continue;
        };
        tracing::debug!(index = meta.last_index, "view changed; running the handler");
        if let Err(e) = handler.run(meta.last_index, &data, &token).await {
            if handler.stops_on_error() {
                tracing::info!(error = %e, "watch stopped by a handler failure");
                return Err(e);
            }
            tracing::error!(error = %e, "watch handler failed");
        }
        if token.is_cancelled() {
            break;
        }
    }
    tracing::info!("watch stopped");
    Ok(())
}

/// One read of the watch's view, as the JSON the handler gets.
async fn fetch(
    client: &Client,
    kind: &WatchKind,
    opts: &QueryOptions,
) -> Result<(Value, QueryMeta), ClientError> {
    let (value, meta) = match kind {
        WatchKind::Key { key } => {
            let path = kv_path(key);
            let (list, meta) = client.query::<Value>(&path, &[], opts).await?;
            // Consul hands the single entry (not a list) to the handler, `null` when absent.
            let entry = match list {
                Some(Value::Array(mut items)) if !items.is_empty() => items.swap_remove(0),
                _ => Value::Null,
            };
            (Some(entry), meta)
        }
        WatchKind::KeyPrefix { prefix } => {
            let params = [("recurse", String::new())];
            client.query(&kv_path(prefix), &params, opts).await?
        }
        WatchKind::Services => client.query("/v1/catalog/services", &[], opts).await?,
        WatchKind::Nodes => client.query("/v1/catalog/nodes", &[], opts).await?,
        WatchKind::Service {
            service,
            tags,
            passing_only,
        } => {
            let mut params: Vec<(&str, String)> = tags.iter().map(|t| ("tag", t.clone())).collect();
            if *passing_only {
                params.push(("passing", "1".into()));
            }
            let path = format!("/v1/health/service/{}", escape_path(service));
            client.query(&path, &params, opts).await?
        }
        WatchKind::Checks { target, tags } => {
            let path = match target {
                ChecksTarget::State(state) => format!("/v1/health/state/{}", escape_path(state)),
                ChecksTarget::Service(service) => {
                    format!("/v1/health/checks/{}", escape_path(service))
                }
            };
            let mut opts = opts.clone();
            opts.filter = tags_filter(tags);
            client.query(&path, &[], &opts).await?
        }
        WatchKind::Event { name } => {
            let params: Vec<(&str, String)> = if name.is_empty() {
                Vec::new()
            } else {
                vec![("name", name.clone())]
            };
            client.query("/v1/event/list", &params, opts).await?
        }
    };
    Ok((value.unwrap_or(Value::Null), meta))
}

/// `/v1/kv/<key>`, escaped, without a leading `/` (Consul's client drops it).
fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", escape_path(key.trim_start_matches('/')))
}

/// A `?filter=` keeping checks of services that carry every tag.
fn tags_filter(tags: &[String]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let clauses: Vec<String> = tags
        .iter()
        .map(|t| format!("{} in ServiceTags", Value::String(t.clone())))
        .collect();
    Some(clauses.join(" and "))
}

/// Delay before retry number `failures` (1-based): 1s, 2s, 4s, ... capped at 30s.
pub(crate) fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    (BACKOFF_BASE * (1u32 << shift)).min(BACKOFF_MAX)
}

/// Decides whether a freshly read view is worth a handler run.
#[derive(Debug, Default)]
pub(crate) struct ChangeTracker {
    /// The last view handed to the handler, without its `ModifyIndex` fields
    /// (`None` before the first).
    last: Option<Value>,
    /// Event watches: IDs of the events in the last list read, `None` before the
    /// first. The agent keeps only recent events, so this stays bounded.
    seen_events: Option<HashSet<String>>,
    events: bool,
}

impl ChangeTracker {
    /// A tracker; `events` selects the event rule (only unseen events are handed over).
    pub(crate) fn new(events: bool) -> ChangeTracker {
        ChangeTracker {
            events,
            ..ChangeTracker::default()
        }
    }

    /// The data to hand to the handler for this read, or `None` when nothing
    /// changed since the last run.
    pub(crate) fn observe(&mut self, value: Value) -> Option<Value> {
        if self.events {
            return self.observe_events(value);
        }
        let comparable = without_modify_index(&value);
        if self.last.as_ref() == Some(&comparable) {
            return None;
        }
        self.last = Some(comparable);
        Some(value)
    }

    fn observe_events(&mut self, value: Value) -> Option<Value> {
        let events = match value {
            Value::Array(events) => events,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        let ids: HashSet<String> = events.iter().filter_map(event_id).collect();
        let Some(seen) = self.seen_events.replace(ids) else {
            // The first read hands over everything the agent remembers, as Consul.
            return Some(Value::Array(events));
        };
        let fresh: Vec<Value> = events
            .into_iter()
            .filter(|e| event_id(e).is_none_or(|id| !seen.contains(&id)))
            .collect();
        (!fresh.is_empty()).then_some(Value::Array(fresh))
    }
}

/// `value` with every `ModifyIndex` member removed, at any depth.
fn without_modify_index(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "ModifyIndex")
                .map(|(k, v)| (k.clone(), without_modify_index(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_modify_index).collect()),
        other => other.clone(),
    }
}

fn event_id(event: &Value) -> Option<String> {
    event.get("ID").and_then(Value::as_str).map(str::to_string)
}

/// Token bucket limiting how fast one watch queries.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// Available queries; negative while a pause is owed.
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub(crate) fn new(now: Instant) -> RateLimit {
        RateLimit {
            tokens: QUERY_BURST,
            last: now,
        }
    }

    /// Takes one query and returns how long to wait before sending it.
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * QUERIES_PER_SEC;
        self.tokens = (self.tokens + refill).min(QUERY_BURST) - 1.0;
        self.last = now;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / QUERIES_PER_SEC)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_view_runs_then_only_changes() {
        let mut t = ChangeTracker::new(false);
        assert_eq!(t.observe(Value::Null), Some(Value::Null));
        assert_eq!(t.observe(Value::Null), None);
        let v1 = json!({"Key": "k", "Value": "YQ==", "ModifyIndex": 5});
        assert_eq!(t.observe(v1.clone()), Some(v1.clone()));
        assert_eq!(t.observe(v1.clone()), None);
        let v2 = json!({"Key": "k", "Value": "Yg==", "ModifyIndex": 6});
        assert_eq!(t.observe(v2.clone()), Some(v2));
        // Back to an earlier value is a change too.
        assert_eq!(t.observe(v1.clone()), Some(v1));
        // An identical rewrite only moves ModifyIndex (here inside a list): no run.
        let mut t = ChangeTracker::new(false);
        let a = json!([{"Node": {"Node": "n1", "ModifyIndex": 3}, "Checks": [{"Status": "passing", "ModifyIndex": 4}]}]);
        let b = json!([{"Node": {"Node": "n1", "ModifyIndex": 9}, "Checks": [{"Status": "passing", "ModifyIndex": 9}]}]);
        let c = json!([{"Node": {"Node": "n1", "ModifyIndex": 9}, "Checks": [{"Status": "critical", "ModifyIndex": 10}]}]);
        assert_eq!(t.observe(a.clone()), Some(a));
        assert_eq!(t.observe(b), None);
        assert_eq!(t.observe(c.clone()), Some(c));
    }

    #[test]
    fn events_hand_over_only_unseen_ones() {
        let mut t = ChangeTracker::new(true);
        let a = json!({"ID": "a", "Name": "deploy"});
        let b = json!({"ID": "b", "Name": "deploy"});
        let c = json!({"ID": "c", "Name": "deploy"});
        // First read: everything, even an empty list.
        assert_eq!(t.observe(json!([])), Some(json!([])));
        assert_eq!(t.observe(json!([a])), Some(json!([a])));
        assert_eq!(t.observe(json!([a])), None);
        assert_eq!(t.observe(json!([a, b, c])), Some(json!([b, c])));
        // The agent forgot `a`: that is not a new event.
        assert_eq!(t.observe(json!([b, c])), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(6), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn rate_limit_allows_a_burst_then_paces() {
        let start = Instant::now();
        let mut rl = RateLimit::new(start);
        assert_eq!(rl.take(start), Duration::ZERO);
        assert_eq!(rl.take(start), Duration::ZERO);
        let pause = rl.take(start);
        assert!(
            pause > Duration::ZERO && pause <= Duration::from_millis(100),
            "{pause:?}"
        );
        // After a quiet second the burst is back.
        let later = start + Duration::from_secs(1);
        assert_eq!(rl.take(later), Duration::ZERO);
        assert_eq!(rl.take(later), Duration::ZERO);
    }

    #[test]
    fn tag_filters_quote_the_tag() {
        assert_eq!(tags_filter(&[]), None);
        assert_eq!(
            tags_filter(&["a".into(), "b\"c".into()]).unwrap(),
            r#""a" in ServiceTags and "b\"c" in ServiceTags"#
        );
    }
}
