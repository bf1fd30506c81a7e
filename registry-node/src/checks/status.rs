//! Consecutive-result thresholds (Consul's `StatusHandler`): pure, no I/O.
//!
//! `success_before_passing`, `failures_before_warning` and `failures_before_critical` hold back
//! a status change until that many consecutive probes agree. Warning results count as
//! successes. The counters start at their thresholds, so the first result after (re)start is
//! reported at once, exactly like Consul.

use registry_api::{CRITICAL, PASSING, WARNING};

/// Threshold state of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StatusHandler {
    success_before_passing: u32,
    success_counter: u32,
    failures_before_warning: u32,
    failures_before_critical: u32,
    failures_counter: u32,
}

impl StatusHandler {
    /// `failures_before_warning` 0 means "same as `failures_before_critical`" (the agent's
    /// default in Consul).
    pub(super) fn new(
        success_before_passing: u32,
        failures_before_warning: u32,
        failures_before_critical: u32,
    ) -> Self {
        let failures_before_warning = if failures_before_warning == 0 {
            failures_before_critical
        } else {
            failures_before_warning
        };
        Self {
            success_before_passing,
            success_counter: success_before_passing,
            failures_before_warning,
            failures_before_critical,
            failures_counter: failures_before_critical,
        }
    }

    /// Feeds one probe result; returns the status and output to report, if any.
    pub(super) fn observe(
        &mut self,
        status: &'static str,
        output: String,
    ) -> Option<(&'static str, String)> {
        if status == PASSING || status == WARNING {
            self.success_counter = self.success_counter.saturating_add(1);
            self.failures_counter = 0;
            if self.success_counter >= self.success_before_passing {
                return Some((status, output));
            }
            tracing::debug!(
                success_count = self.success_counter,
                success_threshold = self.success_before_passing,
                "check passed but has not reached success threshold"
            );
            return None;
        }
        self.failures_counter = self.failures_counter.saturating_add(1);
        self.success_counter = 0;
        if self.failures_counter >= self.failures_before_critical {
            return Some((CRITICAL, output));
        }
        if self.failures_counter >= self.failures_before_warning {
            return Some((WARNING, output));
        }
        tracing::debug!(
            failure_count = self.failures_counter,
            warning_threshold = self.failures_before_warning,
            failure_threshold = self.failures_before_critical,
            "check failed but has not reached warning/failure threshold"
        );
        None
    }
}
