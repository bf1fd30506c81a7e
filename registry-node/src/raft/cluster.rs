//! Membership: bootstrapping a multi-server cluster (`-bootstrap-expect=N`),
//! adding a server (learner first, promoted once caught up, as Consul's
//! autopilot does with non-voters) and removing one. Changes run on the
//! leader; elsewhere they fail with [`ClusterError::NotLeader`] naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::{Node, NodeId, RaftNode};

/// How long `add_server` waits for the new server to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// A Raft member as `operator raft list-peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Raft ID.
    pub id: NodeId,
    /// RPC address (`ip:server-port`).
    pub addr: String,
    /// Voter (true) or learner/non-voter (false).
    pub voter: bool,
}

/// Errors of membership changes.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Only the leader changes the membership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// The new server did not catch up in time.
    #[error("server {id} did not catch up within {after:?}")]
    CatchUpTimeout {
        /// The server being added.
        id: NodeId,
        /// The timeout that ran out.
        after: Duration,
    },
    /// openraft refused or failed the change.
    #[error("raft membership change: {0}")]
    Raft(String),
}

impl ClusterError {
    /// True for [`ClusterError::NotLeader`].
    pub fn is_not_leader(&self) -> bool {
        matches!(self, ClusterError::NotLeader { .. })
    }
}

fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ClusterError::NotLeader {
            leader: f.leader_id,
        },
        e => ClusterError::Raft(e.to_string()),
    }
}

impl RaftNode {
    /// Bootstraps a cluster of `members` (all voters) on this pristine server.
    /// Returns `false` when Raft state already exists (nothing done). Call it
    /// on one server once `-bootstrap-expect` servers see each other; the
    /// others learn the membership from the elected leader.
    pub async fn bootstrap_cluster(
        &self,
        members: BTreeMap<NodeId, Node>,
    ) -> Result<bool, ClusterError> {
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(id = self.id, "bootstrapped a multi-server raft cluster");
                Ok(true)
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(ClusterError::Raft(e.to_string())),
        }
    }

    /// Adds server `id` at `addr` (`ip:server-port`): first as a learner,
    /// blocking until it has replicated the log up to its own addition (by
    /// entries or by an installed snapshot), then promoted to voter (joint
    /// consensus). A no-op for an existing voter.
    pub async fn add_server(&self, id: NodeId, addr: String) -> Result<(), ClusterError> {
        self.require_leader()?;
        if self.members().iter().any(|m| m.id == id && m.voter) {
            return Ok(());
        }
        let node = BasicNode { addr };
        let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
        let timed_out = || ClusterError::CatchUpTimeout {
            id,
            after: CATCH_UP_TIMEOUT,
        };
        // openraft's own "blocking" only waits until the learner is within
        // `replication_lag_threshold` (5000) entries; we want it to hold
        // everything up to its own membership entry before it may vote.
        let added = tokio::time::timeout_at(deadline, self.raft.add_learner(id, node, false))
            .await
            .map_err(|_| timed_out())?
            .map_err(change_error)?;
        let target = added.log_id.index;
        let caught_up = self
            .raft
            .wait(Some(deadline - tokio::time::Instant::now()))
            .metrics(
                |m| match &m.replication {
                    None => true,
                    Some(r) => r
                        .get(&id)
                        .cloned()
                        .flatten()
                        .is_some_and(|l| l.index >= target),
                },
                "learner caught up",
            )
            .await
            .map_err(|_| timed_out())?;
        if caught_up.replication.is_none() {
            return Err(ClusterError::NotLeader {
                leader: caught_up.current_leader,
            });
        }
        tracing::info!(id, "learner caught up; promoting to voter");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(change_error)?;
        Ok(())
    }

    /// Removes server `id` from the membership (voter or learner). Quorum
    /// shrinks accordingly; removing the leader itself makes it step down
    /// once the change is committed.
    pub async fn remove_server(&self, id: NodeId) -> Result<(), ClusterError> {
        self.require_leader()?;
        let Some(member) = self.members().into_iter().find(|m| m.id == id) else {
            return Ok(());
        };
        let ids = BTreeSet::from([id]);
        let change = if member.voter {
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(change_error)?;
        Ok(())
    }

    /// The current (effective) membership, voters and learners, by ID.
    pub fn members(&self) -> Vec<Member> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect()
    }

    /// The leader's RPC address, if a leader is known.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    fn require_leader(&self) -> Result<(), ClusterError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ClusterError::NotLeader {
                leader: self.leader(),
            })
        }
    }
}
