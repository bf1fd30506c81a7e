//! Alias checks (Consul's `CheckAlias`): mirror the health of another local service instance
//! (`alias_service`) and/or of a node's node-level checks (`alias_node`).
//!
//! The agent answers through [`HealthView`]; the status is the worst of what was asked for
//! and the output is the description of the worst part (Consul's `All checks passing.` or
//! `Aliased check "<name>" failing: <output>` come from the agent). An unknown service or node
//! is critical with Consul's `Service <id> could not be found on node <node>`. Consul learns of
//! local changes by notification; here the view is polled every second (and at start).
//! Thresholds do not apply to alias checks, as in Consul.

use std::sync::Arc;
use std::time::Duration;

use registry_api::{CRITICAL, CheckDefinition, PASSING, WARNING, status_rank};
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::{HealthView, Inner, Reporter};

/// How often the aliased health is read.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// What an alias check mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AliasCheck {
    node: String,
    service: String,
}

impl AliasCheck {
    pub(super) fn new(def: &CheckDefinition) -> Self {
        Self {
            node: def.alias_node.clone(),
            service: def.alias_service.clone(),
        }
    }

    /// The aliased status and output, from the agent's current view.
    pub(super) fn evaluate(&self, health: &dyn HealthView) -> (&'static str, String) {
        let not_found = || {
            (
                CRITICAL,
                format!(
                    "Service {} could not be found on node {}",
                    self.service, self.node
                ),
            )
        };
        let mut worst: Option<(String, String)> = None;
        let mut consider = |part: (String, String)| {
            // Ties keep the first part: the node's state explains a service's.
            if worst
                .as_ref()
                .is_none_or(|(s, _)| status_rank(&part.0) > status_rank(s))
            {
                worst = Some(part);
            }
        };
        if !self.node.is_empty() {
            match health.node_health(&self.node) {
                Some(part) => consider(part),
                None => return not_found(),
            }
        }
        if !self.service.is_empty() {
            match health.service_health(&self.service) {
                Some(part) => consider(part),
                None => return not_found(),
            }
        }
        let Some((status, output)) = worst else {
            return not_found();
        };
        // Maintenance is a critical check underneath.
        let status = match status_rank(&status) {
            0 => PASSING,
            1 => WARNING,
            _ => CRITICAL,
        };
        (status, output)
    }
}

/// The task of one alias check.
#[tracing::instrument(skip_all, fields(check = %check_id))]
pub(super) async fn alias_loop(
    inner: Arc<Inner>,
    check_id: String,
    check: AliasCheck,
    token: CancellationToken,
) {
    tracing::debug!(node = %check.node, service = %check.service, "alias check started");
    let health = inner.health.clone();
    let mut reporter = Reporter::new(inner, check_id, token.clone());
    let mut tick = interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (status, output) = check.evaluate(health.as_ref());
        reporter.report(status, output);
    }
    tracing::debug!("alias check stopped");
}
