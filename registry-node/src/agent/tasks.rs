//! Background loops of an agent. Each one stops when the agent's token is cancelled.
//! - leadership: on becoming leader, register this node and run a full sync;
//! - anti-entropy: a full sync every minute (Consul's period for small clusters);
//! - TTL checks: mark expired TTL checks critical with `TTL expired`;
//! - sessions (leader only): invalidate sessions not renewed within 2 × TTL, through Raft;
//! - tombstones (leader only): reap KV tombstones older than 15 minutes.

use std::sync::Arc;
use std::time::Duration;

use registry_api::duration::parse_duration;
use tokio::time::{Instant, interval, sleep};
use tokio_util::task::TaskTracker;

use super::Agent;
use crate::state::Command;

/// Consul expires sessions after this multiple of their TTL.
const SESSION_TTL_MULTIPLIER: u32 = 2;
/// How long KV tombstones are kept (Consul's `tombstone_ttl`).
const TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);

pub(super) fn spawn_all(agent: &Arc<Agent>, tracker: &TaskTracker) {
    tracker.spawn(leadership_loop(agent.clone()));
    tracker.spawn(anti_entropy_loop(agent.clone()));
    tracker.spawn(ttl_loop(agent.clone()));
    tracker.spawn(session_loop(agent.clone()));
    tracker.spawn(tombstone_loop(agent.clone()));
}

async fn leadership_loop(agent: Arc<Agent>) {
    let Some(raft) = agent.raft.clone() else {
        return;
    };
    let mut metrics = raft.raft.metrics();
    let mut was_leader = false;
    loop {
        let is_leader = metrics.borrow().current_leader == Some(raft.id);
        if is_leader && !was_leader {
            tracing::info!("cluster leadership acquired");
            // Sessions get a fresh full TTL under a new leader, as in Consul.
            agent
                .session_deadlines
                .lock()
                .expect("sessions lock")
                .clear();
            let mut delay = Duration::from_millis(50);
            loop {
                match agent.register_self().await {
                    Ok(()) => break,
                    Err(e) => tracing::warn!(error = %e, "failed to register this node"),
                }
                tokio::select! {
                    _ = agent.token.cancelled() => return,
                    _ = sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            match agent.sync_all().await {
                Ok(()) => tracing::info!("synced node info"),
                Err(e) => tracing::warn!(error = %e, "failed to sync remote state"),
            }
        } else if !is_leader && was_leader {
            tracing::info!("cluster leadership lost");
        }
        was_leader = is_leader;
        tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

async fn anti_entropy_loop(agent: Arc<Agent>) {
    loop {
        let jitter = Duration::from_millis(rand::random::<u64>() % 10_000);
        tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            _ = sleep(agent.opts.sync_interval + jitter.min(agent.opts.sync_interval / 6)) => {}
        }
        if agent.has_leader()
            && let Err(e) = agent.sync_all().await
        {
            tracing::warn!(error = %e, "failed to sync remote state");
        }
    }
}

async fn ttl_loop(agent: Arc<Agent>) {
    let mut tick = interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let expired: Vec<String> = {
            let local = agent.local.lock().expect("local lock");
            local
                .checks
                .values()
                .filter(|c| c.ttl_deadline.is_some_and(|d| d <= now))
                .map(|c| c.check.check_id.clone())
                .collect()
        };
        for id in expired {
            agent.expire_ttl(&id).await;
        }
        agent.sync_dirty_outputs().await;
        agent.reap_critical_services().await;
    }
}

/// Resets a session's expiry (create and renew).
pub fn touch_session(agent: &Agent, id: &str, ttl: Duration) {
    let deadline = Instant::now() + ttl * SESSION_TTL_MULTIPLIER;
    agent
        .session_deadlines
        .lock()
        .expect("sessions lock")
        .insert(id.to_string(), deadline);
}

async fn session_loop(agent: Arc<Agent>) {
    let Some(raft) = agent.raft.clone() else {
        return;
    };
    let mut tick = interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !raft.is_leader() {
            continue;
        }
        let now = Instant::now();
        let sessions: Vec<(String, Duration)> = raft.shared.read(|store| {
            store
                .sessions()
                .filter_map(|s| {
                    parse_duration(&s.ttl)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .map(|d| (s.id.clone(), d))
                })
                .collect()
        });
        let expired: Vec<String> = {
            let mut deadlines = agent.session_deadlines.lock().expect("sessions lock");
            deadlines.retain(|id, _| sessions.iter().any(|(s, _)| s == id));
            sessions
                .iter()
                .filter(|(id, ttl)| {
                    *deadlines
                        .entry(id.clone())
                        .or_insert(now + *ttl * SESSION_TTL_MULTIPLIER)
                        <= now
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in expired {
            tracing::info!(session = %id, "session TTL expired; invalidating");
            if let Err(e) = agent
                .write(Command::SessionDestroy { id: id.clone() })
                .await
            {
                tracing::warn!(session = %id, error = %e, "failed to invalidate session");
            } else {
                agent
                    .session_deadlines
                    .lock()
                    .expect("sessions lock")
                    .remove(&id);
            }
        }
    }
}

async fn tombstone_loop(agent: Arc<Agent>) {
    let Some(raft) = agent.raft.clone() else {
        return;
    };
    // Remember (index, when) pairs; reap indexes older than the TTL.
    let mut seen: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let mut tick = interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        seen.push_back((raft.shared.read(|s| s.index()), now));
        let mut reap = None;
        while seen
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) >= TOMBSTONE_TTL)
        {
            reap = seen.pop_front().map(|(i, _)| i);
        }
        if let (Some(index), true) = (reap, raft.is_leader())
            && let Err(e) = agent.write(Command::ReapTombstones { index }).await
        {
            tracing::debug!(error = %e, "tombstone reap failed");
        }
    }
}
