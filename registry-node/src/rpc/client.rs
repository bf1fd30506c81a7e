//! The RPC client: one multiplexed connection per peer address, opened on
//! first use and replaced after it breaks. Calls register a reply slot under a
//! fresh request ID; one I/O task per connection writes requests and routes
//! answers back to their slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Envelope, RpcError, RpcRequest, RpcResponse, codec};

/// Reply slots of the calls in flight on one connection.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<RpcResponse>>>>;

/// One live connection.
struct Connection {
    /// Frames to write; the I/O task owns the socket.
    out_tx: mpsc::Sender<Bytes>,
    /// Calls waiting for their answer.
    pending: Pending,
    next_id: AtomicU64,
    /// Cancelled by the I/O task when the socket is gone.
    closed: CancellationToken,
    /// Stops the I/O task once the pool forgets this connection.
    _stop: DropGuard,
}

/// The per-address slot; the async lock makes concurrent first calls share one connect.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// A pool of RPC connections, cheap to clone (all clones share the pool).
#[derive(Clone, Default)]
pub struct RpcClient {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    /// Test fault injection: calls to these addresses fail as unreachable.
    #[cfg(feature = "test-util")]
    blocked: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl RpcClient {
    /// A client with an empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `req` to `addr` and waits at most `timeout` (connect included) for the answer.
    pub async fn call(
        &self,
        addr: &str,
        req: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, RpcError> {
        let deadline = Instant::now() + timeout;
        #[cfg(feature = "test-util")]
        if self.blocked.lock().expect("blocked lock").contains(addr) {
            return Err(RpcError::Connect {
                addr: addr.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::HostUnreachable, "link cut (test)"),
            });
        }
        let conn = self.connection(addr, deadline).await?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = Bytes::from(serde_json::to_vec(&Envelope { id, body: req })?);
        let (reply_tx, reply_rx) = oneshot::channel();
        conn.pending
            .lock()
            .expect("pending lock")
            .insert(id, reply_tx);
        let closed = || RpcError::Closed {
            addr: addr.to_string(),
        };
        // The I/O task may have died between the pool lookup and the insert.
        if conn.closed.is_cancelled() || conn.out_tx.send(frame).await.is_err() {
            conn.pending.lock().expect("pending lock").remove(&id);
            self.forget(addr, &conn);
            return Err(closed());
        }
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Ok(Ok(RpcResponse::Error(message))) => Err(RpcError::Remote {
                addr: addr.to_string(),
                message,
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => {
                self.forget(addr, &conn);
                Err(closed())
            }
            Err(_) => {
                conn.pending.lock().expect("pending lock").remove(&id);
                Err(RpcError::Timeout {
                    addr: addr.to_string(),
                    after: timeout,
                })
            }
        }
    }

    /// Drops every pooled connection (their I/O tasks stop).
    pub fn close_all(&self) {
        self.slots.lock().expect("pool lock").clear();
    }

    /// Test fault injection: cuts (`true`) or restores the link to `addr`.
    /// Calls in flight are not affected; new calls fail as unreachable.
    #[cfg(feature = "test-util")]
    pub fn set_blocked(&self, addr: &str, blocked: bool) {
        let mut set = self.blocked.lock().expect("blocked lock");
        if blocked {
            set.insert(addr.to_string());
        } else {
            set.remove(addr);
        }
    }

    /// Number of peer addresses with a pool slot (tests).
    #[cfg(test)]
    pub(crate) fn pooled(&self) -> usize {
        self.slots.lock().expect("pool lock").len()
    }

    /// The live connection to `addr`, connecting if there is none.
    async fn connection(&self, addr: &str, deadline: Instant) -> Result<Arc<Connection>, RpcError> {
        let slot = self
            .slots
            .lock()
            .expect("pool lock")
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.closed.is_cancelled()
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let connect_err = |source| RpcError::Connect {
            addr: addr.to_string(),
            source,
        };
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(connect_err(e)),
            Err(_) => {
                return Err(connect_err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let (out_tx, out_rx) = mpsc::channel(256);
        let stop = CancellationToken::new();
        let conn = Arc::new(Connection {
            out_tx,
            pending: Pending::default(),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            _stop: stop.clone().drop_guard(),
        });
        tokio::spawn(io_loop(
            stream,
            out_rx,
            conn.pending.clone(),
            conn.closed.clone(),
            stop,
        ));
        tracing::debug!(%addr, "rpc connected");
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Removes `conn` from the pool if it is still the pooled one.
    fn forget(&self, addr: &str, conn: &Arc<Connection>) {
        let slot = self.slots.lock().expect("pool lock").get(addr).cloned();
        if let Some(slot) = slot
            && let Ok(mut slot) = slot.try_lock()
            && slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn))
        {
            *slot = None;
        }
    }
}

/// Writes queued frames and dispatches answers until the socket fails or the
/// connection is dropped from the pool. On exit every waiting call fails.
async fn io_loop(
    stream: TcpStream,
    mut out_rx: mpsc::Receiver<Bytes>,
    pending: Pending,
    closed: CancellationToken,
    stop: CancellationToken,
) {
    let mut framed = Framed::new(stream, codec());
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            frame = out_rx.recv() => {
                let Some(frame) = frame else { break };
                if let Err(e) = framed.send(frame).await {
                    tracing::debug!(error = %e, "rpc send failed");
                    break;
                }
            }
            frame = framed.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "rpc receive failed");
                        break;
                    }
                    None => break,
                };
                match serde_json::from_slice::<Envelope<RpcResponse>>(&frame) {
                    Ok(env) => {
                        let slot = pending.lock().expect("pending lock").remove(&env.id);
                        if let Some(slot) = slot {
                            let _ = slot.send(env.body);
                        }
                    }
                    // A reply we cannot read leaves its caller to time out; the stream itself is fine.
                    Err(e) => tracing::warn!(error = %e, "undecodable rpc answer"),
                }
            }
        }
    }
    closed.cancel();
    // Dropping the senders fails the waiting calls with `Closed`.
    pending.lock().expect("pending lock").clear();
}
