//! The gossip task: one tokio task owns the SWIM core (a `foca::Foca` value), the
//! member table and the transport, and `select!`s `biased;` on shutdown first, then
//! inbound datagrams, due timers (foca's `submit_after` plus our reaper, rejoin, join
//! and leave deadlines) and commands from [`GossipHandle`].
//!
//! ```text
//! datagram ─ open (version, decrypt) ─┬─ KIND_FOCA ─ node-ID check ─ foca.handle_data ─┐
//!                                     └─ KIND_DIRECT (tags, push/pull ─ apply_many,    │
//!                                                     refusal)                         │
//! timer ─ foca.handle_timer / push/pull ──────────────────────────────────────────────┤
//! command ─ foca.announce + push/pull / add_broadcast / leave_cluster ────────────────┤
//!            effects: sends ─ seal ─ transport; timers ─ heap; notifications ─ table ◄┘
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use foca::{
    Codec, Foca, Member as SwimMember, Message, Notification, OwnedNotification, PostcardCodec,
    Runtime, State, Timer,
};
use foca_rand::SeedableRng;
use foca_rand::rngs::SmallRng;
use foca_rand::seq::IteratorRandom;
use registry_api::agent::{Member, MemberStatus};
use registry_api::event::UserEvent;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Duration, Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, instrument, trace, warn};

use super::config::GossipConfig;
use super::crypto::{self, CryptoError, Keyring};
use super::member::{MemberEvent, MemberTable, NodeIdentity, to_member};
use super::message::{
    Broadcast, BroadcastInbox, Direct, Inbox, KIND_DIRECT, KIND_FOCA, UserEventMsg,
    encode_broadcast, encode_direct, encode_push_pull,
};
use super::transport::Transport;

/// Serf's default user event size limit (name + payload).
pub const USER_EVENT_SIZE_LIMIT: usize = 512;

/// Errors returned by [`GossipHandle`] operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GossipError {
    /// The gossip task has stopped (shutdown or panic).
    #[error("gossip runtime stopped")]
    Stopped,
    /// `join()` reached none of the given addresses.
    #[error("failed to join any nodes: no reply from {0}")]
    NoneContacted(String),
    /// A contacted node refused us (node-ID conflict).
    #[error("{0}")]
    Refused(String),
    /// `force_leave()` named a member we do not know.
    #[error("no member named '{0}'")]
    UnknownMember(String),
    /// A user event is too large to gossip.
    #[error("user event exceeds limit of {limit} bytes ({size})")]
    EventTooLarge {
        /// Name + payload size.
        size: usize,
        /// [`USER_EVENT_SIZE_LIMIT`].
        limit: usize,
    },
    /// The local member has left; it cannot join or fire events any more.
    #[error("the local member has left the cluster")]
    Left,
    /// A keyring operation on a pool without encryption.
    #[error("gossip encryption is not enabled")]
    NotEncrypted,
    /// A keyring operation failed.
    #[error(transparent)]
    Keyring(#[from] CryptoError),
}

/// A keyring operation on this node (`consul keyring`). Applying it on every member
/// (Consul fans out with serf queries) is the caller's job for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringOp {
    /// List installed keys.
    List,
    /// Install a secondary key (base64).
    Install(String),
    /// Make an installed key primary.
    Use(String),
    /// Remove a secondary key.
    Remove(String),
}

impl GossipError {
    /// Whether the failure is a node-ID conflict refusal.
    pub fn is_refused(&self) -> bool {
        matches!(self, GossipError::Refused(_))
    }
}

type Reply<T> = oneshot::Sender<Result<T, GossipError>>;

enum Command {
    Join(Vec<SocketAddr>, Reply<usize>),
    Leave(Reply<()>),
    ForceLeave(String, Reply<()>),
    SetTags(BTreeMap<String, String>, Reply<()>),
    FireEvent(UserEvent, Reply<UserEvent>),
    RecentEvents(oneshot::Sender<Vec<UserEvent>>),
    Keyring(KeyringOp, Reply<Vec<String>>),
    Stats(oneshot::Sender<BTreeMap<String, String>>),
}

/// A handle on a running gossip pool. Cheap to clone; the task stops on the token.
#[derive(Clone)]
pub struct GossipHandle {
    cmd_tx: mpsc::Sender<Command>,
    members_rx: watch::Receiver<Arc<Vec<Member>>>,
    events_tx: broadcast::Sender<MemberEvent>,
    user_tx: broadcast::Sender<UserEvent>,
    local_name: Arc<str>,
    local_addr: SocketAddr,
    /// Cancelled by the task when it exits, whatever the reason.
    stopped: CancellationToken,
}

impl std::fmt::Debug for GossipHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipHandle")
            .field("local_name", &self.local_name)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl GossipHandle {
    /// Every known member, the local one included, sorted by name (like
    /// `/v1/agent/members`). Reaped members are gone; left/failed ones are listed.
    pub fn members(&self) -> Vec<Member> {
        self.members_rx.borrow().as_ref().clone()
    }

    /// A receiver that changes whenever [`members`](Self::members) does; use it to wait
    /// on a condition (`wait_for`) instead of sleeping.
    pub fn watch_members(&self) -> watch::Receiver<Arc<Vec<Member>>> {
        self.members_rx.clone()
    }

    /// Waits until `pred` holds for the member list (wrap it in a timeout).
    pub async fn wait_members(&self, pred: impl Fn(&[Member]) -> bool) -> Result<(), GossipError> {
        let mut rx = self.members_rx.clone();
        rx.wait_for(|m| pred(m))
            .await
            .map(drop)
            .map_err(|_| GossipError::Stopped)
    }

    /// The local node name.
    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    /// The address we advertise.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn call<T>(&self, f: impl FnOnce(Reply<T>) -> Command) -> Result<T, GossipError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(f(tx))
            .await
            .map_err(|_| GossipError::Stopped)?;
        rx.await.map_err(|_| GossipError::Stopped)?
    }

    /// Announces ourselves to `addrs` and waits (up to `join_timeout`) for their
    /// answers. Returns how many answered; fails only if none did (Consul's `join`).
    pub async fn join(&self, addrs: Vec<SocketAddr>) -> Result<usize, GossipError> {
        self.call(|tx| Command::Join(addrs, tx)).await
    }

    /// Graceful leave: broadcasts a leave intent, lets it spread, then declares
    /// ourselves down so others record `left` rather than `failed`.
    pub async fn leave(&self) -> Result<(), GossipError> {
        self.call(Command::Leave).await
    }

    /// `force-leave`: marks a failed member `left` cluster-wide (an alive one refutes).
    pub async fn force_leave(&self, name: &str) -> Result<(), GossipError> {
        let name = name.to_owned();
        self.call(|tx| Command::ForceLeave(name, tx)).await
    }

    /// Replaces the local member's tags and gossips them.
    pub async fn set_tags(&self, tags: BTreeMap<String, String>) -> Result<(), GossipError> {
        self.call(|tx| Command::SetTags(tags, tx)).await
    }

    /// Fires a user event to every member (the local one included). An empty `id` gets a
    /// fresh UUID; `ltime` and `version` are assigned. Returns the event as sent.
    pub async fn fire_event(&self, event: UserEvent) -> Result<UserEvent, GossipError> {
        self.call(|tx| Command::FireEvent(event, tx)).await
    }

    /// The last `event_buffer` user events this node saw, oldest first.
    pub async fn recent_user_events(&self) -> Result<Vec<UserEvent>, GossipError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::RecentEvents(tx))
            .await
            .map_err(|_| GossipError::Stopped)?;
        rx.await.map_err(|_| GossipError::Stopped)
    }

    /// Applies a keyring operation and returns the installed keys, primary first.
    pub async fn keyring(&self, op: KeyringOp) -> Result<Vec<String>, GossipError> {
        self.call(|tx| Command::Keyring(op, tx)).await
    }

    /// The `serf_lan`/`serf_wan` section of `consul info` (members, failed, left,
    /// member_time, event_time, encrypted, intent_queue, …).
    pub async fn stats(&self) -> Result<BTreeMap<String, String>, GossipError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Stats(tx))
            .await
            .map_err(|_| GossipError::Stopped)?;
        rx.await.map_err(|_| GossipError::Stopped)
    }

    /// Membership, user and conflict events from now on.
    pub fn events(&self) -> broadcast::Receiver<MemberEvent> {
        self.events_tx.subscribe()
    }

    /// User events only, from now on (each delivered once per node).
    pub fn user_events(&self) -> broadcast::Receiver<UserEvent> {
        self.user_tx.subscribe()
    }

    /// Resolves when the gossip task has exited.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }
}

/// Starts a gossip pool on `transport` and returns its handle. The task runs until
/// `token` is cancelled (call [`GossipHandle::leave`] first for a graceful exit).
pub fn spawn_gossip<T: Transport>(
    config: GossipConfig,
    transport: T,
    token: CancellationToken,
) -> GossipHandle {
    let addr = config.advertise.unwrap_or_else(|| transport.local_addr());
    let bump = config.initial_bump.unwrap_or_else(|| {
        // The wall clock only orders incarnations across restarts; no timing logic
        // depends on it.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        secs as u16
    });
    let identity = NodeIdentity {
        name: config.node_name.clone(),
        node_id: config.node_id.clone(),
        addr,
        bump,
    };
    let seed = config.rng_seed.unwrap_or_else(rand::random);
    let rng = SmallRng::seed_from_u64(seed);
    let (handler, inbox) = BroadcastInbox::new();
    let foca = Foca::with_custom_broadcast(
        identity.clone(),
        config.foca_config(1),
        rng,
        PostcardCodec,
        handler,
    );
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (events_tx, _) = broadcast::channel(4096);
    let (user_tx, _) = broadcast::channel(1024);
    let local = to_member(&identity, MemberStatus::Alive, &config.tags);
    let (members_tx, members_rx) = watch::channel(Arc::new(vec![local]));
    let stopped = CancellationToken::new();
    let handle = GossipHandle {
        cmd_tx,
        members_rx,
        events_tx: events_tx.clone(),
        user_tx: user_tx.clone(),
        local_name: config.node_name.as_str().into(),
        local_addr: addr,
        stopped: stopped.clone(),
    };
    let core = Core {
        keyring: config.keyring.clone(),
        local_tags: config.tags.clone(),
        join_addrs: config.retry_join.iter().copied().collect(),
        cfg: config,
        foca,
        rng: SmallRng::seed_from_u64(seed.wrapping_add(1)),
        stale_replies: HashMap::new(),
        push_pull_after_join: false,
        inbox,
        effects: Effects::default(),
        transport,
        table: MemberTable::default(),
        local_tags_ltime: 1,
        local_status: MemberStatus::Alive,
        member_clock: 1,
        event_clock: 0,
        timers: BinaryHeap::new(),
        timer_seq: 0,
        rejoin_scheduled: false,
        joins: Vec::new(),
        join_seq: 0,
        leave_reply: None,
        recent_events: VecDeque::new(),
        reported_conflicts: HashSet::new(),
        events_tx,
        user_tx,
        members_tx,
        dirty: false,
        last_size: 1,
    };
    tokio::spawn(async move {
        let _done = stopped.drop_guard();
        gossip_loop(core, cmd_rx, token).await;
    });
    handle
}

#[instrument(skip_all, fields(node = %core.cfg.node_name))]
async fn gossip_loop<T: Transport>(
    mut core: Core<T>,
    mut cmd_rx: mpsc::Receiver<Command>,
    token: CancellationToken,
) {
    info!(addr = %core.foca.identity().addr, encrypted = core.keyring.is_some(), "gossip started");
    core.start();
    loop {
        let next = core.timers.peek().map(|Reverse(t)| t.at);
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            res = core.transport.recv() => match res {
                Ok((from, packet)) => core.on_datagram(from, &packet),
                Err(e) => {
                    error!(error = %e, "gossip transport failed");
                    break;
                }
            },
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                core.on_due_timers();
            }
            cmd = cmd_rx.recv() => match cmd {
                Some(cmd) => core.on_command(cmd),
                // Every handle is gone: nobody can observe us any more.
                None => break,
            },
        }
        core.publish();
    }
    info!("gossip stopped");
}

/// What one foca call asked of the world; drained right after each call.
#[derive(Default)]
struct Effects {
    sends: Vec<(SocketAddr, Vec<u8>)>,
    timers: Vec<(Timer<NodeIdentity>, Duration)>,
    notes: Vec<OwnedNotification<NodeIdentity>>,
}

impl Runtime<NodeIdentity> for Effects {
    fn notify(&mut self, notification: Notification<'_, NodeIdentity>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeIdentity, data: &[u8]) {
        self.sends.push((to.addr, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<NodeIdentity>, after: Duration) {
        self.timers.push((event, after));
    }
}

enum Tick {
    Foca(Timer<NodeIdentity>),
    Reap,
    Rejoin,
    PushPull,
    PushPullAfterJoin,
    JoinDeadline(u64),
    FinishLeave,
}

struct TimerEntry {
    at: Instant,
    seq: u64,
    tick: Tick,
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct PendingJoin {
    id: u64,
    waiting: BTreeSet<SocketAddr>,
    contacted: usize,
    refused: Option<String>,
    reply: Reply<usize>,
}

type Swim = Foca<NodeIdentity, PostcardCodec, SmallRng, BroadcastInbox>;

/// Everything the gossip task owns. Methods never `.await`.
struct Core<T> {
    cfg: GossipConfig,
    foca: Swim,
    /// Picks push/pull partners (foca's RNG is private to it).
    rng: SmallRng,
    /// When we last re-announced to a member that still addressed a previous
    /// incarnation of us (one announce per member per probe interval).
    stale_replies: HashMap<SocketAddr, Instant>,
    /// A follow-up push/pull after a join is armed.
    push_pull_after_join: bool,
    /// Broadcasts accepted by foca's handler, applied after each foca call.
    inbox: Inbox,
    effects: Effects,
    transport: T,
    keyring: Option<Keyring>,
    table: MemberTable,
    local_tags: BTreeMap<String, String>,
    local_tags_ltime: u64,
    local_status: MemberStatus,
    /// Lamport clock for tags and leave intents (Serf's member clock).
    member_clock: u64,
    /// Lamport clock for user events (Serf's event clock).
    event_clock: u64,
    timers: BinaryHeap<Reverse<TimerEntry>>,
    timer_seq: u64,
    rejoin_scheduled: bool,
    /// Addresses to re-announce to when membership drops to zero.
    join_addrs: BTreeSet<SocketAddr>,
    joins: Vec<PendingJoin>,
    join_seq: u64,
    leave_reply: Option<Reply<()>>,
    recent_events: VecDeque<UserEvent>,
    /// Node-ID conflicts already reported (log and event once per member).
    reported_conflicts: HashSet<(String, String)>,
    events_tx: broadcast::Sender<MemberEvent>,
    user_tx: broadcast::Sender<UserEvent>,
    members_tx: watch::Sender<Arc<Vec<Member>>>,
    /// The published member list is out of date.
    dirty: bool,
    /// Pool size foca's config was last computed for.
    last_size: usize,
}

impl<T: Transport> Core<T> {
    /// Arms the reaper and, with `retry_join` configured, announces right away.
    fn start(&mut self) {
        self.schedule(self.cfg.reap_interval, Tick::Reap);
        self.schedule(self.cfg.push_pull_interval, Tick::PushPull);
        if !self.join_addrs.is_empty() {
            self.schedule_rejoin(Duration::ZERO);
        }
    }

    fn local_identity(&self) -> NodeIdentity {
        self.foca.identity().clone()
    }

    /// foca's `submit_after` and our own deadlines share one heap; tokio's clock makes
    /// them follow virtual time in `start_paused` tests.
    fn schedule(&mut self, after: Duration, tick: Tick) {
        self.timer_seq += 1;
        let entry = TimerEntry {
            at: Instant::now() + after,
            seq: self.timer_seq,
            tick,
        };
        self.timers.push(Reverse(entry));
    }

    /// At most one rejoin timer is armed; it re-arms itself while we stay alone.
    fn schedule_rejoin(&mut self, after: Duration) {
        if !self.rejoin_scheduled {
            self.rejoin_scheduled = true;
            self.schedule(after, Tick::Rejoin);
        }
    }

    fn emit(&mut self, event: MemberEvent) {
        self.dirty = true;
        // No subscriber is fine: events are best-effort notifications.
        let _ = self.events_tx.send(event);
    }

    fn tick_member_clock(&mut self) -> u64 {
        self.member_clock += 1;
        self.member_clock
    }

    // ---- outbound -------------------------------------------------------------

    fn send_raw(&self, to: SocketAddr, body: &[u8]) {
        let packet = crypto::seal(self.keyring.as_ref(), body);
        if let Err(e) = self.transport.send_to(to, &packet) {
            debug!(%to, error = %e, "gossip send failed");
        }
    }

    fn send_direct(&self, to: SocketAddr, msg: &Direct) {
        self.send_raw(to, &encode_direct(msg));
    }

    /// Applies everything the last foca call(s) produced, until quiet.
    fn drain(&mut self) {
        loop {
            let sends = mem::take(&mut self.effects.sends);
            let timers = mem::take(&mut self.effects.timers);
            let notes = mem::take(&mut self.effects.notes);
            let broadcasts = mem::take(&mut *self.inbox.lock().expect("gossip inbox poisoned"));
            if sends.is_empty() && timers.is_empty() && notes.is_empty() && broadcasts.is_empty() {
                break;
            }
            for (to, data) in sends {
                let mut body = Vec::with_capacity(data.len() + 1);
                body.push(KIND_FOCA);
                body.extend_from_slice(&data);
                self.send_raw(to, &body);
            }
            for (timer, after) in timers {
                self.schedule(after, Tick::Foca(timer));
            }
            for note in notes {
                self.on_notification(note);
            }
            for msg in broadcasts {
                self.on_broadcast(msg);
            }
        }
        self.resize();
    }

    /// Retransmit limit and suspicion timeout scale with the pool size.
    fn resize(&mut self) {
        let size = self.foca.num_members() + 1;
        if size != self.last_size {
            self.last_size = size;
            if let Err(e) = self.foca.set_config(self.cfg.foca_config(size)) {
                warn!(error = %e, "cannot rescale gossip config");
            }
        }
    }

    /// Queues a custom broadcast. It goes through our own handler first (so a local
    /// user event is delivered locally and a local leave intent applied) and is then
    /// piggybacked on foca traffic `max_transmissions` times.
    fn add_broadcast(&mut self, msg: &Broadcast) {
        if let Err(e) = self.foca.add_broadcast(&encode_broadcast(msg)) {
            warn!(error = %e, "cannot queue gossip broadcast");
        }
        // Push it out now rather than on the next gossip round.
        if let Err(e) = self.foca.broadcast(&mut self.effects) {
            debug!(error = %e, "gossip broadcast failed");
        }
        self.drain();
    }

    // ---- inbound --------------------------------------------------------------

    fn on_datagram(&mut self, from: SocketAddr, packet: &[u8]) {
        if self.local_status == MemberStatus::Left {
            // A left member is silent; answering could resurrect it.
            return;
        }
        let body = match crypto::open(self.keyring.as_ref(), packet) {
            Ok(body) => body,
            Err(e) => {
                debug!(%from, error = %e, "dropping gossip packet");
                return;
            }
        };
        match body.split_first() {
            Some((&KIND_FOCA, data)) => self.on_foca_packet(data),
            Some((&KIND_DIRECT, data)) => match postcard::from_bytes::<Direct>(data) {
                Ok(msg) => self.on_direct(from, msg),
                Err(e) => debug!(%from, error = %e, "undecodable direct gossip message"),
            },
            _ => debug!(%from, "unknown gossip packet kind"),
        }
    }

    /// A SWIM packet. A reply from a pending join target counts as "contacted".
    fn on_foca_packet(&mut self, data: &[u8]) {
        // Peek at the sender before foca adopts it: a node reusing another member's
        // node ID must not get in (Consul refuses it at join).
        let header = match PostcardCodec.decode_header(data) {
            Ok(h) => h,
            Err(e) => {
                debug!(error = %e, "undecodable foca header");
                return;
            }
        };
        if let Some((existing, message)) = self.table.conflict(&header.src, self.foca.identity()) {
            self.report_conflict(&header.src, &existing, &message);
            self.send_direct(header.src.addr, &Direct::Refused { message });
            return;
        }
        self.mark_contacted(header.src.addr, None);
        if header.message != Message::Announce && self.foca.identity().supersedes(&header.dst) {
            self.reannounce_to(header.src.clone());
        }
        if let Err(e) = self.foca.handle_data(data, &mut self.effects) {
            trace!(error = %e, "foca rejected packet");
        }
        self.drain();
    }

    /// `src` still talks to a previous incarnation of us: we were restarted (or renewed)
    /// and it has not heard yet. foca drops such packets (wrong destination), so without
    /// this a restarted node that could not join (no snapshot yet) stays unknown until
    /// someone's periodic announce, up to `reconnect_interval` later. Announcing to `src`
    /// makes it replace the stale identity and answer with a feed.
    fn reannounce_to(&mut self, src: NodeIdentity) {
        if self.local_status != MemberStatus::Alive {
            return;
        }
        let now = Instant::now();
        let period = self.cfg.probe_interval;
        if self
            .stale_replies
            .get(&src.addr)
            .is_some_and(|at| now.duration_since(*at) < period)
        {
            return;
        }
        self.stale_replies
            .retain(|_, at| now.duration_since(*at) < period);
        self.stale_replies.insert(src.addr, now);
        debug!(member = %src.name, "member addresses our previous incarnation; announcing");
        if let Err(e) = self.foca.announce(src, &mut self.effects) {
            debug!(error = %e, "announce failed");
        }
        self.drain();
    }

    fn report_conflict(&mut self, id: &NodeIdentity, existing: &str, message: &str) {
        if self
            .reported_conflicts
            .insert((id.name.clone(), id.node_id.clone()))
        {
            error!(member = %id.name, node_id = %id.node_id, %existing, "{message}");
            self.emit(MemberEvent::Conflict {
                name: id.name.clone(),
                node_id: id.node_id.clone(),
                existing: existing.to_owned(),
                message: message.to_owned(),
            });
        }
    }

    /// Messages outside foca: tags pull/reply and conflict refusals.
    fn on_direct(&mut self, from: SocketAddr, msg: Direct) {
        match msg {
            Direct::TagsRequest { from: asker } => {
                let reply = Direct::TagsReply {
                    id: self.local_identity(),
                    ltime: self.local_tags_ltime,
                    tags: self.local_tags.clone(),
                };
                self.send_direct(asker.addr, &reply);
            }
            Direct::TagsReply { id, ltime, tags } => {
                self.member_clock = self.member_clock.max(ltime);
                if id.name != self.cfg.node_name
                    && let Some(ev) = self.table.apply_tags(&id, ltime, tags, Instant::now())
                {
                    self.emit(ev);
                }
                self.dirty = true;
            }
            Direct::PushPull {
                from: peer,
                reply,
                chunk,
                members,
            } => self.on_push_pull(from, peer, reply, chunk, members),
            Direct::Refused { message } => {
                error!(%from, "{message}");
                self.mark_contacted(from, Some(message.clone()));
                self.emit(MemberEvent::Refused { by: from, message });
            }
        }
    }

    /// One datagram of a peer's full state: hand foca the members it may not know (foca
    /// keeps the newer of two incarnations, never revives a down identity and lets a
    /// renewed identity replace a stale one), then answer a request with our own state.
    fn on_push_pull(
        &mut self,
        from: SocketAddr,
        peer: NodeIdentity,
        reply: bool,
        chunk: u16,
        members: Vec<SwimMember<NodeIdentity>>,
    ) {
        let local = self.local_identity();
        if peer.addr == local.addr || peer.name == local.name {
            return;
        }
        if let Some((existing, message)) = self.table.conflict(&peer, &local) {
            self.report_conflict(&peer, &existing, &message);
            self.send_direct(peer.addr, &Direct::Refused { message });
            return;
        }
        self.mark_contacted(from, None);
        if self
            .foca
            .iter_membership_state()
            .any(|m| m.id() == &peer && m.state() == State::Down)
        {
            // Declared down: foca's own traffic tells it so (TurnUndead); its state is
            // not trusted, as foca ignores the updates of an inactive sender.
            return;
        }
        let updates: Vec<SwimMember<NodeIdentity>> =
            std::iter::once(SwimMember::alive(peer.clone()))
                .chain(
                    members
                        .into_iter()
                        .filter(|m| self.table.admits(m.id(), &local)),
                )
                .collect();
        trace!(member = %peer.name, chunk, count = updates.len(), "push/pull state");
        if let Err(e) = self
            .foca
            .apply_many(updates.into_iter(), true, &mut self.effects)
        {
            debug!(error = %e, "cannot apply push/pull state");
        }
        self.drain();
        if !reply && chunk == 0 {
            self.send_state(peer.addr, true);
        }
    }

    /// Sends our full membership state to `to` (a push/pull request or its reply). Active
    /// members first: if the state is cut at the chunk limit, down ones are dropped.
    fn send_state(&self, to: SocketAddr, reply: bool) {
        let state = self.foca.iter_membership_state();
        let (active, down): (Vec<_>, Vec<_>) =
            state.cloned().partition(|m| m.state() != State::Down);
        let packets = encode_push_pull(
            self.foca.identity(),
            reply,
            active.into_iter().chain(down),
            self.cfg.foca_packet_size(),
        );
        for body in packets {
            self.send_raw(to, &body);
        }
    }

    /// Serf's periodic push/pull: full state with one random live member, so a member
    /// gossip missed is learned within one interval instead of when it happens to probe us.
    fn push_pull_random(&mut self) {
        let target = self
            .foca
            .iter_members()
            .map(|m| m.id().addr)
            .choose(&mut self.rng);
        if let Some(addr) = target {
            self.send_state(addr, false);
        }
    }

    /// foca's view changed: translate into Serf statuses and events. Tags are pulled on
    /// every appearance/rename because broadcasts alone may have been missed.
    fn on_notification(&mut self, note: OwnedNotification<NodeIdentity>) {
        let now = Instant::now();
        match note {
            OwnedNotification::MemberUp(id) => {
                // Updates relayed by a third party bypass the header check above.
                if let Some((existing, message)) = self.table.conflict(&id, self.foca.identity()) {
                    self.report_conflict(&id, &existing, &message);
                    return;
                }
                if let Some(ev) = self.table.on_up(&id, now) {
                    debug!(member = %id.name, "member joined");
                    self.emit(ev);
                }
                self.request_tags(&id);
            }
            OwnedNotification::MemberDown(id) => {
                if let Some(ev) = self.table.on_down(&id, now) {
                    info!(member = %id.name, status = ?ev_status(&ev), "member down");
                    self.emit(ev);
                }
            }
            OwnedNotification::Rename(old, new) => {
                self.table.on_rename(&old, &new, now);
                self.dirty = true;
                self.request_tags(&new);
            }
            OwnedNotification::Active => info!("gossip pool joined"),
            OwnedNotification::Idle => {
                if self.local_status == MemberStatus::Alive {
                    warn!("no live gossip members; re-announcing to join addresses");
                    self.schedule_rejoin(Duration::ZERO);
                }
            }
            OwnedNotification::Defunct => {
                if self.local_status == MemberStatus::Alive {
                    warn!("declared down by the cluster");
                }
            }
            OwnedNotification::Rejoin(id) => {
                info!(
                    bump = id.bump,
                    "declared down by the cluster; rejoined with a renewed identity"
                );
                self.dirty = true;
                // foca resets to disconnected; if nobody is left to hear the new identity,
                // the join addresses must.
                self.schedule_rejoin(Duration::ZERO);
            }
        }
    }

    fn request_tags(&self, id: &NodeIdentity) {
        self.send_direct(
            id.addr,
            &Direct::TagsRequest {
                from: self.local_identity(),
            },
        );
    }

    /// A broadcast foca's handler judged new. Lamport clocks witness every received
    /// time so our next tags/intent/event orders after everything we have seen.
    fn on_broadcast(&mut self, msg: Broadcast) {
        let now = Instant::now();
        match msg {
            Broadcast::Tags { id, ltime, tags } => {
                self.member_clock = self.member_clock.max(ltime);
                if id.name != self.cfg.node_name
                    && let Some(ev) = self.table.apply_tags(&id, ltime, tags, now)
                {
                    self.emit(ev);
                }
            }
            Broadcast::Leave { name, bump, ltime } => {
                self.member_clock = self.member_clock.max(ltime);
                if name == self.cfg.node_name {
                    if self.local_status == MemberStatus::Alive {
                        // Someone force-left us while we are fine: refute with newer tags.
                        info!("refuting a leave intent about ourselves");
                        self.local_tags_ltime = self.tick_member_clock();
                        let msg = Broadcast::Tags {
                            id: self.local_identity(),
                            ltime: self.local_tags_ltime,
                            tags: self.local_tags.clone(),
                        };
                        self.add_broadcast(&msg);
                    }
                } else if let Some(ev) = self.table.apply_leave_intent(&name, bump, ltime, now) {
                    self.emit(ev);
                } else {
                    self.dirty = true;
                }
            }
            Broadcast::User(ev) => {
                self.event_clock = self.event_clock.max(ev.ltime);
                let event = UserEvent {
                    id: ev.id,
                    name: ev.name,
                    payload: ev.payload,
                    node_filter: ev.node_filter,
                    service_filter: ev.service_filter,
                    tag_filter: ev.tag_filter,
                    version: 1,
                    ltime: ev.ltime,
                };
                debug!(id = %event.id, name = %event.name, ltime = event.ltime, "user event");
                if self.recent_events.len() >= self.cfg.event_buffer.max(1) {
                    self.recent_events.pop_front();
                }
                self.recent_events.push_back(event.clone());
                let _ = self.user_tx.send(event.clone());
                let _ = self.events_tx.send(MemberEvent::User(event));
            }
        }
    }

    /// Counts an answer (or a refusal) from `addr` toward every pending `join()` that
    /// contacted it; a join completes early once all its targets answered.
    fn mark_contacted(&mut self, addr: SocketAddr, refused: Option<String>) {
        let mut done = Vec::new();
        let mut answered = false;
        for join in &mut self.joins {
            if join.waiting.remove(&addr) {
                answered = true;
                match &refused {
                    Some(m) => join.refused = Some(m.clone()),
                    None => join.contacted += 1,
                }
                if join.waiting.is_empty() {
                    done.push(join.id);
                }
            }
        }
        if answered && refused.is_none() {
            // Remember it for re-announcing if we ever end up alone (foca's gap).
            self.join_addrs.insert(addr);
            // The join target's state lacks whoever joined through it at the same time
            // (a pool starting up); one more exchange, with a random member, a probe
            // interval later picks them up instead of waiting a full push/pull interval.
            if !self.push_pull_after_join {
                self.push_pull_after_join = true;
                self.schedule(self.cfg.probe_interval, Tick::PushPullAfterJoin);
            }
        }
        for id in done {
            self.finish_join(id);
        }
    }

    fn finish_join(&mut self, id: u64) {
        let Some(pos) = self.joins.iter().position(|j| j.id == id) else {
            return;
        };
        let join = self.joins.swap_remove(pos);
        let result = if join.contacted > 0 {
            Ok(join.contacted)
        } else if let Some(message) = join.refused {
            Err(GossipError::Refused(message))
        } else {
            let addrs: Vec<String> = join.waiting.iter().map(ToString::to_string).collect();
            Err(GossipError::NoneContacted(addrs.join(", ")))
        };
        let _ = join.reply.send(result);
    }

    // ---- timers ---------------------------------------------------------------

    /// Fires every timer that is due; several can be due after a busy iteration.
    fn on_due_timers(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
            let Reverse(entry) = self.timers.pop().expect("peeked");
            self.on_tick(entry.tick);
        }
    }

    fn on_tick(&mut self, tick: Tick) {
        match tick {
            Tick::Foca(timer) => {
                if self.local_status == MemberStatus::Left {
                    return;
                }
                if let Err(e) = self.foca.handle_timer(timer, &mut self.effects) {
                    trace!(error = %e, "foca timer");
                }
                self.drain();
            }
            Tick::Reap => {
                let events = self.table.reap(
                    Instant::now(),
                    self.cfg.reconnect_timeout,
                    self.cfg.tombstone_timeout,
                );
                for ev in events {
                    info!(member = ?reaped_name(&ev), "member reaped");
                    self.emit(ev);
                }
                self.schedule(self.cfg.reap_interval, Tick::Reap);
            }
            Tick::Rejoin => {
                self.rejoin_scheduled = false;
                if self.local_status != MemberStatus::Alive || self.foca.num_members() > 0 {
                    return;
                }
                let addrs: Vec<SocketAddr> = self.join_addrs.iter().copied().collect();
                self.announce(&addrs);
                self.schedule_rejoin(self.cfg.rejoin_interval);
            }
            Tick::PushPull => {
                if self.local_status == MemberStatus::Alive {
                    self.push_pull_random();
                }
                let period = self.cfg.push_pull_period(self.foca.num_members() + 1);
                self.schedule(period, Tick::PushPull);
            }
            Tick::PushPullAfterJoin => {
                self.push_pull_after_join = false;
                if self.local_status == MemberStatus::Alive {
                    self.push_pull_random();
                }
            }
            Tick::JoinDeadline(id) => self.finish_join(id),
            Tick::FinishLeave => self.finish_leave(),
        }
    }

    /// Joins through `addrs`: a foca announce (the peer adopts us and feeds back a
    /// sample) plus a push/pull request (the peer's full state, Serf's join sync).
    fn announce(&mut self, addrs: &[SocketAddr]) {
        let own = self.foca.identity().addr;
        for &addr in addrs.iter().filter(|a| **a != own) {
            if let Err(e) = self
                .foca
                .announce(NodeIdentity::placeholder(addr), &mut self.effects)
            {
                debug!(%addr, error = %e, "announce failed");
            }
            self.send_state(addr, false);
        }
        self.drain();
    }

    // ---- commands -------------------------------------------------------------

    /// Handle requests. Each replies exactly once; `join` and `leave` reply later (on an
    /// answer or a deadline), so their reply senders are parked in `joins`/`leave_reply`.
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Join(addrs, reply) => {
                if self.local_status != MemberStatus::Alive {
                    let _ = reply.send(Err(GossipError::Left));
                    return;
                }
                let own = self.foca.identity().addr;
                let waiting: BTreeSet<SocketAddr> =
                    addrs.into_iter().filter(|a| *a != own).collect();
                if waiting.is_empty() {
                    let _ = reply.send(Err(GossipError::NoneContacted(String::new())));
                    return;
                }
                self.join_seq += 1;
                let id = self.join_seq;
                let targets: Vec<SocketAddr> = waiting.iter().copied().collect();
                self.joins.push(PendingJoin {
                    id,
                    waiting,
                    contacted: 0,
                    refused: None,
                    reply,
                });
                self.schedule(self.cfg.join_timeout, Tick::JoinDeadline(id));
                self.announce(&targets);
            }
            Command::Leave(reply) => {
                if self.local_status != MemberStatus::Alive {
                    let _ = reply.send(Ok(()));
                    return;
                }
                info!("leaving the gossip pool");
                self.local_status = MemberStatus::Leaving;
                self.dirty = true;
                let ltime = self.tick_member_clock();
                let id = self.local_identity();
                self.add_broadcast(&Broadcast::Leave {
                    name: id.name,
                    bump: id.bump,
                    ltime,
                });
                self.leave_reply = Some(reply);
                if self.foca.num_members() == 0 {
                    self.finish_leave();
                } else {
                    self.schedule(self.cfg.leave_propagate_delay, Tick::FinishLeave);
                }
            }
            Command::ForceLeave(name, reply) => {
                let Some(entry) = self.table.get(&name) else {
                    let _ = reply.send(Err(GossipError::UnknownMember(name)));
                    return;
                };
                let bump = entry.id.bump;
                let ltime = self.tick_member_clock();
                info!(member = %name, "force-leave");
                self.add_broadcast(&Broadcast::Leave { name, bump, ltime });
                let _ = reply.send(Ok(()));
            }
            Command::SetTags(tags, reply) => {
                self.local_tags = tags;
                self.local_tags_ltime = self.tick_member_clock();
                let msg = Broadcast::Tags {
                    id: self.local_identity(),
                    ltime: self.local_tags_ltime,
                    tags: self.local_tags.clone(),
                };
                self.add_broadcast(&msg);
                let me = to_member(&self.local_identity(), self.local_status, &self.local_tags);
                self.emit(MemberEvent::Update(me));
                let _ = reply.send(Ok(()));
            }
            Command::FireEvent(mut event, reply) => {
                if self.local_status != MemberStatus::Alive {
                    let _ = reply.send(Err(GossipError::Left));
                    return;
                }
                let size = event.name.len() + event.payload.as_ref().map_or(0, Vec::len);
                if size > USER_EVENT_SIZE_LIMIT {
                    let _ = reply.send(Err(GossipError::EventTooLarge {
                        size,
                        limit: USER_EVENT_SIZE_LIMIT,
                    }));
                    return;
                }
                if event.id.is_empty() {
                    event.id = uuid::Uuid::new_v4().to_string();
                }
                self.event_clock += 1;
                event.ltime = self.event_clock;
                event.version = 1;
                self.add_broadcast(&Broadcast::User(UserEventMsg {
                    id: event.id.clone(),
                    name: event.name.clone(),
                    payload: event.payload.clone(),
                    node_filter: event.node_filter.clone(),
                    service_filter: event.service_filter.clone(),
                    tag_filter: event.tag_filter.clone(),
                    ltime: event.ltime,
                }));
                let _ = reply.send(Ok(event));
            }
            Command::RecentEvents(reply) => {
                let _ = reply.send(self.recent_events.iter().cloned().collect());
            }
            Command::Keyring(op, reply) => {
                let _ = reply.send(self.keyring_op(op));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
        }
    }

    fn keyring_op(&mut self, op: KeyringOp) -> Result<Vec<String>, GossipError> {
        let Some(ring) = self.keyring.as_mut() else {
            return match op {
                KeyringOp::List => Ok(Vec::new()),
                _ => Err(GossipError::NotEncrypted),
            };
        };
        match &op {
            KeyringOp::List => {}
            KeyringOp::Install(k) => ring.install(k)?,
            KeyringOp::Use(k) => ring.use_key(k)?,
            KeyringOp::Remove(k) => ring.remove(k)?,
        }
        if op != KeyringOp::List {
            info!(op = op_name(&op), "gossip keyring changed");
        }
        Ok(ring.keys())
    }

    fn stats(&self) -> BTreeMap<String, String> {
        let count = |s: MemberStatus| self.table.visible().filter(|m| m.status == s).count();
        let alive = count(MemberStatus::Alive) + count(MemberStatus::Leaving) + 1;
        [
            ("members", alive.to_string()),
            ("failed", count(MemberStatus::Failed).to_string()),
            ("left", count(MemberStatus::Left).to_string()),
            ("member_time", self.member_clock.to_string()),
            ("event_time", self.event_clock.to_string()),
            ("event_queue", "0".to_owned()),
            (
                "intent_queue",
                self.foca.custom_broadcast_backlog().to_string(),
            ),
            ("query_queue", "0".to_owned()),
            ("query_time", "1".to_owned()),
            ("encrypted", self.keyring.is_some().to_string()),
            // foca has no Lifeguard awareness score; 0 is "healthy" in Consul.
            ("health_score", "0".to_owned()),
            ("coordinate_resets", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Second half of a graceful leave: the intent has had time to spread, now declare
    /// ourselves down (receivers turn leaving → left) and go silent.
    fn finish_leave(&mut self) {
        if self.local_status != MemberStatus::Leaving {
            return;
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.effects) {
            warn!(error = %e, "leave_cluster failed");
        }
        self.drain();
        self.local_status = MemberStatus::Left;
        self.dirty = true;
        for join in mem::take(&mut self.joins) {
            let _ = join.reply.send(Err(GossipError::Left));
        }
        if let Some(reply) = self.leave_reply.take() {
            let _ = reply.send(Ok(()));
        }
        info!("left the gossip pool");
    }

    /// Publishes the member list if anything changed.
    fn publish(&mut self) {
        if !mem::take(&mut self.dirty) {
            return;
        }
        let mut members: Vec<Member> = self.table.visible().map(|e| e.to_member()).collect();
        members.push(to_member(
            self.foca.identity(),
            self.local_status,
            &self.local_tags,
        ));
        members.sort_by(|a, b| a.name.cmp(&b.name));
        self.members_tx.send_replace(Arc::new(members));
    }
}

fn op_name(op: &KeyringOp) -> &'static str {
    match op {
        KeyringOp::List => "list",
        KeyringOp::Install(_) => "install",
        KeyringOp::Use(_) => "use",
        KeyringOp::Remove(_) => "remove",
    }
}

fn ev_status(ev: &MemberEvent) -> &'static str {
    match ev {
        MemberEvent::Leave(_) => "left",
        MemberEvent::Fail(_) => "failed",
        _ => "other",
    }
}

fn reaped_name(ev: &MemberEvent) -> Option<&str> {
    match ev {
        MemberEvent::Reap(m) => Some(&m.name),
        _ => None,
    }
}
