//! The write path: group commit on every server, routed to the leader.
//!
//! Writes that arrive while a batch is being committed wait in the queue and
//! go out together as the next log entry, so N concurrent writers share one
//! append and one fsync. openraft handles one entry's flush at a time, so
//! batching above it is what makes concurrency pay. Requests keep their
//! order; each is applied in turn at the entry's index.
//!
//! On the leader a batch is proposed with `client_write`. On a follower the
//! same batch is forwarded to the leader as one `ForwardWrite` RPC, where it
//! joins the leader's queue (and its batches) as one unit. During an election
//! a batch is retried for [`Timing::leader_wait`](super::Timing), but only
//! where that is known to be safe: the leader refused it (not leader) or
//! could not be reached at all. A batch whose fate is unknown (timeout,
//! connection broken mid-call) fails with [`WriteError::Fatal`] instead of
//! being applied twice.

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{COMMIT_TIMEOUT, Core, MAX_BATCH, Pending, Route, WriteError};
use crate::rpc::{RemoteRefusal, RpcRequest, RpcResponse};
use crate::state::{Request, Response};

/// Queues `reqs` as one unit and waits for its responses.
pub(crate) async fn submit(
    batch_tx: &mpsc::Sender<Pending>,
    reqs: Vec<Request>,
    forwarded: bool,
) -> Result<Vec<Response>, WriteError> {
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let (reply, rx) = oneshot::channel();
    let down = || WriteError::Fatal("raft is shut down".into());
    batch_tx
        .send(Pending {
            reqs,
            reply,
            forwarded,
        })
        .await
        .map_err(|_| down())?;
    rx.await.map_err(|_| down())?
}

/// Drains the queue into batches and commits them one after another.
///
/// Because an entry may carry many requests, the snapshot threshold is also
/// applied to requests: after that many, a snapshot is triggered, which keeps
/// the retained log (and memory) bounded under heavy concurrent load.
pub(crate) async fn batch_loop(
    core: Core,
    mut rx: mpsc::Receiver<Pending>,
    snapshot_every: u64,
    token: CancellationToken,
) {
    let mut since_snapshot = 0u64;
    loop {
        let first = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            first = rx.recv() => match first {
                Some(first) => first,
                None => break,
            },
        };
        let mut count = first.reqs.len();
        let mut batch = vec![first];
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => {
                    count += p.reqs.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        if core.route() == Route::Local {
            since_snapshot += count as u64;
            if since_snapshot >= snapshot_every {
                since_snapshot = 0;
                let _ = core.raft.trigger().snapshot().await;
            }
        }
        tokio::select! {
            biased;
            // Dropping the batch fails its waiters with "shut down".
            _ = token.cancelled() => break,
            _ = commit(&core, batch) => {}
        }
    }
}

/// Answers every unit of `batch` with its slice of `result`.
fn reply_all(batch: Vec<Pending>, result: Result<Vec<Response>, WriteError>) {
    match result {
        Ok(responses) => {
            let mut responses = responses.into_iter();
            for p in batch {
                let mine: Vec<Response> = responses.by_ref().take(p.reqs.len()).collect();
                let _ = p.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Commits one batch: locally when leading, else by forwarding, retrying
/// safely while the leader is unknown.
async fn commit(core: &Core, mut batch: Vec<Pending>) {
    let deadline = Instant::now() + core.timing.leader_wait();
    loop {
        let route = core.route();
        if route != Route::Local {
            // Forwarded units go back to their follower, which retries with its own view.
            let (forwarded, local): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| p.forwarded);
            reply_all(forwarded, Err(WriteError::NoLeader));
            batch = local;
            if batch.is_empty() {
                return;
            }
        }
        // Cloned per attempt: a refused attempt must be retryable.
        let requests =
            || -> Vec<Request> { batch.iter().flat_map(|p| p.reqs.iter().cloned()).collect() };
        match route {
            Route::Local => match propose(core, requests()).await {
                Attempt::Done(result) => return reply_all(batch, result),
                Attempt::Retry => {}
            },
            Route::Remote(leader, addr) => match forward(core, &addr, requests()).await {
                Attempt::Done(result) => return reply_all(batch, result),
                Attempt::Retry => tracing::debug!(leader, %addr, "forward refused; retrying"),
            },
            Route::None => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return reply_all(batch, Err(WriteError::NoLeader));
        }
        tokio::time::sleep(core.timing.poll().min(deadline - now)).await;
    }
}

/// The outcome of one attempt.
enum Attempt {
    /// Final: answer the waiters.
    Done(Result<Vec<Response>, WriteError>),
    /// Certainly not applied; try again once the leader is known.
    Retry,
}

async fn propose(core: &Core, requests: Vec<Request>) -> Attempt {
    let write = tokio::time::timeout(COMMIT_TIMEOUT, core.raft.client_write(requests));
    let result = tokio::select! {
        result = write => result,
        // openraft 0.9 keeps a cut-off leader leading; Consul's leader steps
        // down after its lease and fails pending writes. Do the same rather
        // than hang until COMMIT_TIMEOUT.
        _ = lease_lost(core) => {
            return Attempt::Done(Err(WriteError::Fatal(
                "leadership lost while committing log; the write may or may not be applied"
                    .into(),
            )));
        }
    };
    match result {
        Ok(Ok(resp)) => Attempt::Done(Ok(resp.data)),
        // Sent only when the entry was never appended or was truncated away.
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Attempt::Retry,
        Ok(Err(RaftError::APIError(e))) => Attempt::Done(Err(WriteError::Fatal(e.to_string()))),
        Ok(Err(RaftError::Fatal(e))) => Attempt::Done(Err(WriteError::Fatal(e.to_string()))),
        Err(_) => Attempt::Done(Err(WriteError::Fatal(format!(
            "timed out after {COMMIT_TIMEOUT:?} waiting for the write to commit"
        )))),
    }
}

/// Resolves once this server no longer leads with a live quorum lease.
async fn lease_lost(core: &Core) {
    while core.route() == Route::Local {
        tokio::time::sleep(core.timing.poll()).await;
    }
}

async fn forward(core: &Core, addr: &str, requests: Vec<Request>) -> Attempt {
    // The leader itself waits up to COMMIT_TIMEOUT for the commit.
    let timeout = COMMIT_TIMEOUT + core.timing.leader_wait();
    match core
        .rpc
        .call(addr, RpcRequest::ForwardWrite(requests), timeout)
        .await
    {
        Ok(RpcResponse::ForwardWrite(Ok(responses))) => Attempt::Done(Ok(responses)),
        Ok(RpcResponse::ForwardWrite(Err(RemoteRefusal::NotLeader))) => Attempt::Retry,
        Ok(RpcResponse::ForwardWrite(Err(RemoteRefusal::Failed(m)))) => {
            Attempt::Done(Err(WriteError::Fatal(m)))
        }
        Ok(_) => Attempt::Done(Err(WriteError::Fatal(
            "unexpected answer to a forwarded write".into(),
        ))),
        Err(e) if e.is_unreachable() => {
            tracing::debug!(%addr, error = %e, "leader unreachable");
            Attempt::Retry
        }
        Err(e) => Attempt::Done(Err(WriteError::Fatal(format!(
            "forwarding to the leader at {addr}: {e}"
        )))),
    }
}
