//! The hickory `RequestHandler`: reads the agent's store, answers through
//! [`super::answer`], applies Consul's UDP limits and copies the client's EDNS.
//!
//! Truncation: without EDNS a UDP answer is first cut to
//! `min(udp_answer_limit, 8)` records (Consul); TC is set for that cut only
//! when `enable_truncate` is on, as in Consul. When the reply still does not
//! fit the client's buffer (512 bytes without EDNS), hickory drops records and
//! always sets TC; we keep that, because without TC `dig` and stub resolvers
//! never retry over TCP, where the full set is served.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Metadata, ResponseCode};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use registry_api::Consistency;
use tokio::net::{TcpListener, UdpSocket};

use super::answer::{self, Answer, Context};
use super::cache::InstanceCache;
use super::{DnsOptions, query};
use crate::agent::Agent;
use crate::raft::RaftNode;

/// Consul never puts more than this many records in a non-EDNS UDP answer.
const MAX_UDP_ANSWERS: usize = 8;

/// Idle timeout of a TCP connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves DNS on the given sockets until the agent's token is cancelled.
pub async fn serve(agent: Arc<Agent>, sockets: Vec<(UdpSocket, TcpListener)>) {
    if sockets.is_empty() {
        return;
    }
    let token = agent.token.clone();
    let cache = Arc::new(InstanceCache::default());
    let udp_handler = Arc::new(DnsHandler::new(agent.clone(), cache.clone()));
    let mut server = Server::new(DnsHandler::new(agent, cache));
    let mut udp_loops = tokio::task::JoinSet::new();
    for (udp, tcp) in sockets {
        if let (Ok(u), Ok(t)) = (udp.local_addr(), tcp.local_addr()) {
            tracing::info!(udp = %u, tcp = %t, "started DNS server");
        }
        udp_loops.spawn(super::udp::serve(udp_handler.clone(), udp, token.clone()));
        server.register_listener(tcp, TCP_TIMEOUT, 32);
    }
    token.cancelled().await;
    while udp_loops.join_next().await.is_some() {}
    if let Err(e) = server.shutdown_gracefully().await {
        tracing::warn!(error = %e, "DNS server stopped with an error");
    }
}

/// Answers every question from the agent's state.
pub struct DnsHandler {
    agent: Arc<Agent>,
    cache: Arc<InstanceCache>,
}

/// Header flags and sections of a reply, before encoding.
pub(super) struct Reply {
    pub(super) rcode: ResponseCode,
    pub(super) truncated: bool,
    pub(super) answer: Option<Answer>,
    /// Relayed from a recursor: not authoritative.
    pub(super) forwarded: bool,
}

impl Reply {
    pub(super) fn code(rcode: ResponseCode) -> Reply {
        Reply {
            rcode,
            truncated: false,
            answer: None,
            forwarded: false,
        }
    }
}

impl DnsHandler {
    /// A handler answering from `agent`'s state.
    pub fn new(agent: Arc<Agent>, cache: Arc<InstanceCache>) -> DnsHandler {
        DnsHandler { agent, cache }
    }

    /// The reply when it needs no waiting: a server answering a question of
    /// its zones from its own store, the common case. `None` when the
    /// question must wait (recursors, a client agent's server, a read barrier).
    pub(super) fn reply_now(
        &self,
        qname: &Name,
        qtype: RecordType,
        udp_no_edns: bool,
    ) -> Option<Reply> {
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Some(Reply::code(ResponseCode::NotImp));
        }
        let opts = &self.agent.opts.dns;
        let target = Target::of(qname, qtype, opts);
        if let Target::Outside = target {
            // Outside our zones: the recursors answer, or nobody does.
            return opts
                .recursors
                .is_empty()
                .then(|| Reply::code(ResponseCode::Refused));
        }
        let raft = self.agent.server_raft()?;
        if !fresh_enough(raft, opts) {
            return None;
        }
        let max = max_answers(opts, udp_no_edns);
        match self.reader().read(raft, qname, qtype, &target, max) {
            // A reverse name nobody here has: upstream may know it.
            None if !opts.recursors.is_empty() => None,
            found => Some(self.conclude(Ok(found), qname, udp_no_edns)),
        }
    }

    fn reader(&self) -> StoreReader<'_> {
        StoreReader {
            agent: &self.agent,
            opts: &self.agent.opts.dns,
            cache: &self.cache,
        }
    }

    /// The reply to any question.
    pub(super) async fn reply(&self, qname: &Name, qtype: RecordType, udp_no_edns: bool) -> Reply {
        if let Some(reply) = self.reply_now(qname, qtype, udp_no_edns) {
            return reply;
        }
        let opts = &self.agent.opts.dns;
        if let Target::Outside = Target::of(qname, qtype, opts) {
            return self.forward(qname, qtype).await;
        }
        let max_answers = max_answers(opts, udp_no_edns);
        let resolved = if self.agent.server_raft().is_some() {
            self.reader().resolve(qname, qtype, max_answers).await
        } else {
            super::remote::ask(&self.agent, opts, qname, qtype, max_answers).await
        };
        match resolved {
            Ok(None) if !opts.recursors.is_empty() => self.forward(qname, qtype).await,
            resolved => self.conclude(resolved, qname, udp_no_edns),
        }
    }

    /// The reply for what the store said: the answer cut to the UDP limit,
    /// NXDOMAIN for an unknown reverse name, SERVFAIL when it could not be read.
    fn conclude(
        &self,
        resolved: Result<Option<Answer>, String>,
        qname: &Name,
        udp_no_edns: bool,
    ) -> Reply {
        let opts = &self.agent.opts.dns;
        let mut answer = match resolved {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                let ctx = context(&self.agent, opts);
                Answer {
                    rcode: ResponseCode::NXDomain,
                    answers: Vec::new(),
                    authority: vec![answer::soa(&opts.domain, &ctx)],
                    additionals: Vec::new(),
                }
            }
            Err(e) => {
                tracing::debug!(%qname, error = %e, "dns: cannot answer");
                return Reply::code(ResponseCode::ServFail);
            }
        };
        let mut truncated = false;
        if udp_no_edns {
            let limit = opts.udp_answer_limit.clamp(1, MAX_UDP_ANSWERS);
            truncated = cut(&mut answer, limit) && opts.enable_truncate;
        }
        Reply {
            rcode: answer.rcode,
            truncated,
            answer: Some(answer),
            forwarded: false,
        }
    }

    /// The reply's header: authoritative unless relayed, RA when recursors exist.
    pub(super) fn metadata(&self, request: &Metadata, reply: &Reply) -> Metadata {
        let mut md = Metadata::response_from_request(request);
        md.authoritative = !reply.forwarded;
        md.recursion_available = !self.agent.opts.dns.recursors.is_empty();
        md.response_code = reply.rcode;
        md.truncation = reply.truncated;
        md
    }

    /// Relays the question to the recursors; REFUSED without any, SERVFAIL
    /// when none answers.
    async fn forward(&self, qname: &Name, qtype: RecordType) -> Reply {
        let opts = &self.agent.opts.dns;
        if opts.recursors.is_empty() {
            return Reply::code(ResponseCode::Refused);
        }
        match super::recursor::forward(
            &opts.recursors,
            opts.recursor_random,
            opts.recursor_timeout,
            qname,
            qtype,
        )
        .await
        {
            Some(m) => Reply {
                rcode: m.metadata.response_code,
                truncated: false,
                forwarded: true,
                answer: Some(Answer {
                    rcode: m.metadata.response_code,
                    answers: m.answers,
                    authority: m.authorities,
                    additionals: m
                        .additionals
                        .into_iter()
                        .filter(|r| r.record_type() != RecordType::OPT)
                        .collect(),
                }),
            },
            None => Reply::code(ResponseCode::ServFail),
        }
    }
}

/// Answers from a server's store with the asking agent's options.
pub struct StoreReader<'a> {
    /// This server.
    pub agent: &'a Agent,
    /// The asking agent's options (this agent's, or a client agent's).
    pub opts: &'a DnsOptions,
    /// Instances kept between questions.
    pub cache: &'a InstanceCache,
}

impl StoreReader<'_> {
    /// `Ok(None)` for a name that is not ours or a reverse name nobody has;
    /// `Err` when the store may not be read (no leader to confirm a fresh read).
    pub async fn resolve(
        &self,
        qname: &Name,
        qtype: RecordType,
        max_answers: usize,
    ) -> Result<Option<Answer>, String> {
        let raft = self
            .agent
            .server_raft()
            .ok_or_else(|| "not a server".to_string())?;
        if !fresh_enough(raft, self.opts) {
            raft.read_barrier(Consistency::Default)
                .await
                .map_err(|e| e.to_string())?;
        }
        let target = Target::of(qname, qtype, self.opts);
        Ok(self.read(raft, qname, qtype, &target, max_answers))
    }

    /// The answer from the store as it is now; `None` for a reverse name
    /// nobody has (or a name outside our zones).
    fn read(
        &self,
        raft: &RaftNode,
        qname: &Name,
        qtype: RecordType,
        target: &Target,
        max_answers: usize,
    ) -> Option<Answer> {
        let ctx = Context {
            max_answers,
            cache: Some(self.cache),
            ..context(self.agent, self.opts)
        };
        match target {
            Target::Reverse(ip) => raft
                .shared
                .read(|store| answer::ptr(store, qname, *ip, &ctx)),
            Target::Zone(question) => Some(raft.shared.read(|store| {
                answer::answer(store, question, qname, qtype, &ctx, &mut rand::rng())
            })),
            Target::Outside => None,
        }
    }
}

/// Stale reads are the default; a server that lost the leader for longer
/// than `max_stale` confirms with it first.
fn fresh_enough(raft: &RaftNode, opts: &DnsOptions) -> bool {
    raft.is_leader()
        || (opts.allow_stale && u128::from(raft.last_contact_ms()) <= opts.max_stale.as_millis())
}

/// Where a question name points; parsed once per question.
enum Target {
    /// `in-addr.arpa` / `ip6.arpa`.
    Reverse(std::net::IpAddr),
    /// `domain` or `alt_domain`.
    Zone(query::Question),
    /// Anywhere else (the recursors' business).
    Outside,
}

impl Target {
    fn of(qname: &Name, qtype: RecordType, opts: &DnsOptions) -> Target {
        let text = qname.to_ascii();
        if let Some(ip) = query::reverse_ip(&text) {
            return Target::Reverse(ip);
        }
        match query::parse(
            &text,
            qtype == RecordType::SRV,
            &opts.domain,
            &opts.alt_domain,
        ) {
            Some(q) => Target::Zone(q),
            None => Target::Outside,
        }
    }
}

/// Service answers worth building: one more than the UDP limit when it
/// applies, so [`cut`] still sees (and flags) a longer set.
fn max_answers(opts: &DnsOptions, udp_no_edns: bool) -> usize {
    if udp_no_edns {
        opts.udp_answer_limit.clamp(1, MAX_UDP_ANSWERS) + 1
    } else {
        usize::MAX
    }
}

fn context<'a>(agent: &'a Agent, opts: &'a DnsOptions) -> Context<'a> {
    Context {
        opts,
        datacenter: &agent.opts.datacenter,
        now_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0),
        max_answers: usize::MAX,
        cache: None,
    }
}

/// Keeps the first `limit` answers and the additionals of the SRV targets
/// still answered. True when something was cut.
pub fn cut(answer: &mut Answer, limit: usize) -> bool {
    if answer.answers.len() <= limit {
        return false;
    }
    answer.answers.truncate(limit);
    let targets: HashSet<&Name> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(&srv.target),
            _ => None,
        })
        .collect();
    if !targets.is_empty() {
        let keep: Vec<Record> = answer
            .additionals
            .iter()
            .filter(|r| targets.contains(&r.name))
            .cloned()
            .collect();
        answer.additionals = keep;
    }
    true
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => {
                let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                return send(&mut response_handle, msg, &request.metadata).await;
            }
        };
        let qname: Name = info.query.name().into();
        let qtype = info.query.query_type();
        let udp_no_edns = request.protocol() == Protocol::Udp && request.edns.is_none();
        let reply = self.reply(&qname, qtype, udp_no_edns).await;

        // hickory does not copy the client's EDNS; without it EDNS clients
        // would be cut at 512 bytes too.
        let edns = request.edns.as_ref().map(|e| {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload().max(512));
            out
        });
        let mut builder = builder;
        if let Some(e) = edns.as_ref() {
            builder.edns(e);
        }
        let md = self.metadata(&request.metadata, &reply);
        let empty = Answer {
            rcode: reply.rcode,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        };
        let a = reply.answer.as_ref().unwrap_or(&empty);
        let msg = builder.build(
            md,
            a.answers.iter(),
            std::iter::empty(),
            a.authority.iter(),
            a.additionals.iter(),
        );
        send(&mut response_handle, msg, &request.metadata).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    msg: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Metadata,
) -> ResponseInfo {
    match handle.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "DNS: cannot send a response");
            let mut md = Metadata::response_from_request(request);
            md.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: md,
                counts: Default::default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::rr::rdata::{A, SRV};

    #[test]
    fn cut_keeps_additionals_of_kept_targets() {
        let q = Name::from_ascii("web.service.consul.").unwrap();
        let t = |i: u8| Name::from_ascii(format!("n{i}.node.dc1.consul.")).unwrap();
        let mut a = Answer {
            rcode: ResponseCode::NoError,
            answers: (0..5)
                .map(|i| Record::from_rdata(q.clone(), 0, RData::SRV(SRV::new(1, 1, 80, t(i)))))
                .collect(),
            authority: Vec::new(),
            additionals: (0..5)
                .map(|i| Record::from_rdata(t(i), 0, RData::A(A([10, 0, 0, i].into()))))
                .collect(),
        };
        assert!(cut(&mut a, 3));
        assert_eq!((a.answers.len(), a.additionals.len()), (3, 3));
        assert!(!cut(&mut a, 3));
    }
}
