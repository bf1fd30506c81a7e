//! Store snapshot + [`Lookup`] → records and RCODE (consul.md §3.3–3.5). Pure:
//! the clock (SOA serial) and the RNG (answer order) are passed in.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use rand::Rng;
use rand::seq::SliceRandom;
use registry_api::{Meta, Node, NodeService, WARNING, status_rank};

use super::DnsOptions;
use super::cache::{InstanceCache, Instances};
use super::query::{Lookup, Question, ip_hex};
use crate::state::Store;

/// A reply's content; the server adds header flags, EDNS and UDP limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// RCODE.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of NXDOMAIN and NODATA replies).
    pub authority: Vec<Record>,
    /// Additional section (addresses of SRV targets, node meta TXT).
    pub additionals: Vec<Record>,
}

/// What the answer depends on besides the store and the question.
pub struct Context<'a> {
    /// Options from the configuration.
    pub opts: &'a DnsOptions,
    /// The agent's datacenter (other DCs are not reachable yet: NXDOMAIN).
    pub datacenter: &'a str,
    /// Unix time, the SOA serial.
    pub now_unix: u32,
    /// Build at most this many service answers (UDP without EDNS keeps only a
    /// few, so the rest is never built); `usize::MAX` for all.
    pub max_answers: usize,
    /// Instances kept between questions (`None`: read from the store each time).
    pub cache: Option<&'a InstanceCache>,
}

/// Answers one question from a store snapshot.
pub fn answer(
    store: &Store,
    question: &Question,
    qname: &Name,
    qtype: RecordType,
    ctx: &Context<'_>,
    rng: &mut impl Rng,
) -> Answer {
    let mut a = Answer {
        rcode: ResponseCode::NoError,
        answers: Vec::new(),
        authority: Vec::new(),
        additionals: Vec::new(),
    };
    // SOA and NS questions get the zone's records whatever the name (as Consul).
    if matches!(qtype, RecordType::SOA | RecordType::NS) {
        let (ns, glue) = nameservers(store, &question.zone, ctx, rng);
        if qtype == RecordType::SOA {
            a.answers.push(soa(&question.zone, ctx));
            a.authority = ns;
        } else {
            a.answers = ns;
        }
        a.additionals = glue;
        return a;
    }
    let Some(lookup) = &question.lookup else {
        return a.nxdomain(question, ctx);
    };
    if lookup
        .dc()
        .is_some_and(|dc| !dc.eq_ignore_ascii_case(ctx.datacenter))
    {
        return a.nxdomain(question, ctx);
    }
    let b = Builder {
        zone: &question.zone,
        ctx,
        qname,
        qtype,
    };
    let found = match lookup {
        Lookup::Service { name, tag, .. } => b.service(store, name, tag.as_deref(), rng, &mut a),
        Lookup::Node { name, .. } => b.node(store, name, &mut a),
        Lookup::Addr { ip, .. } => {
            b.addr(*ip, &mut a);
            true
        }
        Lookup::Query { name, .. } => b.prepared_query(store, name, rng, &mut a),
    };
    if !found {
        return a.nxdomain(question, ctx);
    }
    if a.answers.is_empty() {
        // The name exists but has no record of this type (NODATA).
        a.authority.push(soa(&question.zone, ctx));
    }
    a
}

/// NS records for up to three random alive servers (`<node>.node.<dc>.<zone>`,
/// the instances of the `consul` service) and their A/AAAA glue.
fn nameservers(
    store: &Store,
    zone: &str,
    ctx: &Context<'_>,
    rng: &mut impl Rng,
) -> (Vec<Record>, Vec<Record>) {
    let mut servers = store.health_service(CONSUL_SERVICE);
    servers.retain(|r| r.checks.iter().all(|c| status_rank(&c.status) < 2));
    servers.shuffle(rng);
    let ttl = ttl_secs(ctx.opts.node_ttl);
    let (mut ns, mut glue) = (Vec::new(), Vec::new());
    for r in servers.iter().take(MAX_NAMESERVERS) {
        let target = name(&format!("{}.node.{}.{zone}", r.node.node, ctx.datacenter));
        ns.push(Record::from_rdata(
            name(zone),
            ttl,
            RData::NS(NS(target.clone())),
        ));
        if let Ok(ip) = r.node.address.parse::<IpAddr>() {
            glue.push(Record::from_rdata(target, ttl, ip_rdata(ip)));
        }
    }
    (ns, glue)
}

/// The service every server is registered as; its instances are the nameservers.
const CONSUL_SERVICE: &str = "consul";

/// Consul lists at most three nameservers.
const MAX_NAMESERVERS: usize = 3;

/// `<reversed ip>.in-addr.arpa` / `.ip6.arpa`: PTR records to the nodes with
/// that address, else to the services registered with it. `None` when
/// nothing has the address (the caller asks the recursors or says NXDOMAIN).
/// Names use the primary domain, as Consul's do.
pub fn ptr(store: &Store, qname: &Name, ip: IpAddr, ctx: &Context<'_>) -> Option<Answer> {
    let same = |addr: &str| addr.parse::<IpAddr>().is_ok_and(|a| a == ip);
    let catalog = store.catalog();
    let dc = ctx.datacenter;
    let domain = &ctx.opts.domain;
    let mut targets: Vec<(String, u32)> = catalog
        .nodes()
        .filter(|n| same(&n.address))
        .map(|n| {
            let ttl = ttl_secs(ctx.opts.node_ttl);
            (format!("{}.node.{dc}.{domain}", n.node), ttl)
        })
        .collect();
    if targets.is_empty() {
        let mut services: Vec<String> = catalog
            .nodes()
            .flat_map(|n| catalog.node_services(&n.node))
            .filter(|s| same(&s.address))
            .map(|s| s.service.clone())
            .collect();
        services.sort();
        services.dedup();
        targets = services
            .into_iter()
            .map(|svc| {
                let ttl = ttl_secs(ctx.opts.service_ttl(&svc));
                (format!("{svc}.service.{dc}.{domain}"), ttl)
            })
            .collect();
    }
    if targets.is_empty() {
        return None;
    }
    Some(Answer {
        rcode: ResponseCode::NoError,
        answers: targets
            .into_iter()
            .map(|(t, ttl)| Record::from_rdata(qname.clone(), ttl, RData::PTR(PTR(name(&t)))))
            .collect(),
        authority: Vec::new(),
        additionals: Vec::new(),
    })
}

impl Answer {
    fn nxdomain(mut self, question: &Question, ctx: &Context<'_>) -> Answer {
        self.rcode = ResponseCode::NXDomain;
        self.answers.clear();
        self.additionals.clear();
        self.authority = vec![soa(&question.zone, ctx)];
        self
    }
}

/// The zone's SOA record (TTL `soa.min_ttl`).
pub fn soa(zone: &str, ctx: &Context<'_>) -> Record {
    let s = &ctx.opts.soa;
    let origin = name(zone);
    let rdata = SOA::new(
        name(&format!("ns.{zone}")),
        name(&format!("hostmaster.{zone}")),
        ctx.now_unix,
        s.refresh as i32,
        s.retry as i32,
        s.expire as i32,
        s.min_ttl,
    );
    Record::from_rdata(origin, s.min_ttl, RData::SOA(rdata))
}

/// A name built from our own labels; invalid ones (node names that are not
/// DNS labels) fall back to the root rather than failing the whole reply.
fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|_| Name::root())
}

fn ttl_secs(d: std::time::Duration) -> u32 {
    d.as_secs().min(u32::MAX as u64) as u32
}

/// A healthy instance, borrowed from the store or from prepared-query rows.
struct Instance<'s> {
    node: &'s Node,
    service: &'s NodeService,
    /// Some check is warning (SRV weight `Weights.Warning`).
    warning: bool,
    /// The SRV target and its address when already known ([`srv_target`]).
    target: Option<&'s (Name, Option<IpAddr>)>,
}

struct Builder<'a> {
    zone: &'a str,
    ctx: &'a Context<'a>,
    qname: &'a Name,
    qtype: RecordType,
}

impl Builder<'_> {
    /// False when no instance of the service is left (NXDOMAIN).
    fn service(
        &self,
        store: &Store,
        svc: &str,
        tag: Option<&str>,
        rng: &mut impl Rng,
        a: &mut Answer,
    ) -> bool {
        let opts = self.ctx.opts;
        // Names DNS cannot carry are never answered (the agent warned at registration).
        if !super::is_dns_label(svc) {
            return false;
        }
        let catalog = store.catalog();
        let real = if catalog.instances(svc).next().is_some() {
            svc
        } else {
            // Names are matched case-insensitively; the catalog is not.
            match catalog.service_name_ignore_case(svc) {
                Some(n) => n,
                None => return false,
            }
        };
        let instances = match self.ctx.cache {
            Some(cache) => cache.get(store, real),
            None => Arc::new(Instances::build(store, real)),
        };
        let targets = (self.qtype == RecordType::SRV)
            .then(|| instances.srv_targets(self.ctx.datacenter, self.zone));
        let mut rows: Vec<Instance<'_>> = instances
            .rows
            .iter()
            .enumerate()
            .filter(|(_, (_, service, warning))| {
                !(opts.only_passing && *warning)
                    && tag.is_none_or(|t| service.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
            })
            .map(|(i, (node, service, warning))| Instance {
                node,
                service,
                warning: *warning,
                target: targets.as_ref().and_then(|t| t.get(i)),
            })
            .collect();
        if rows.is_empty() {
            return false;
        }
        rows.shuffle(rng);
        let ttl = ttl_secs(opts.service_ttl(svc));
        self.instances(&rows, ttl, a);
        true
    }

    /// `NAME.query`: the prepared query by ID or name (templates included),
    /// filtered by its own rules; TTL from its `DNS.TTL`, else the service's.
    fn prepared_query(
        &self,
        store: &Store,
        id_or_name: &str,
        rng: &mut impl Rng,
        a: &mut Answer,
    ) -> bool {
        let Some(q) = crate::state::query::resolve(store, id_or_name) else {
            return false;
        };
        let mut rows = crate::state::query::execute(store, &q, None);
        if rows.is_empty() {
            return false;
        }
        rows.shuffle(rng);
        let ttl = registry_api::duration::parse_duration(&q.dns.ttl)
            .map(ttl_secs)
            .unwrap_or_else(|_| ttl_secs(self.ctx.opts.service_ttl(&q.service.service)));
        let rows: Vec<Instance<'_>> = rows
            .iter()
            .map(|r| Instance {
                node: &r.node,
                service: &r.service,
                warning: r.aggregated_status() == WARNING,
                target: None,
            })
            .collect();
        self.instances(&rows, ttl, a);
        true
    }

    /// The records of healthy, shuffled instances for the question's type.
    fn instances(&self, rows: &[Instance<'_>], ttl: u32, a: &mut Answer) {
        let opts = self.ctx.opts;
        match self.qtype {
            RecordType::SRV => self.srv(rows, ttl, a),
            RecordType::A | RecordType::AAAA | RecordType::ANY => {
                let mut seen = HashSet::new();
                let mut count = 0;
                let mut hostname = None;
                for r in rows {
                    let addr = if r.service.address.is_empty() {
                        &r.node.address
                    } else {
                        &r.service.address
                    };
                    let Ok(ip) = addr.parse::<IpAddr>() else {
                        hostname.get_or_insert(addr.as_str());
                        continue;
                    };
                    if (opts.a_record_limit > 0 && count >= opts.a_record_limit)
                        || count >= self.ctx.max_answers
                    {
                        break;
                    }
                    if let Some(rec) = self.ip_record(self.qname.clone(), ip, ttl)
                        && seen.insert(ip)
                    {
                        a.answers.push(rec);
                        count += 1;
                    }
                }
                // Only hostname addresses: one CNAME, resolved by the client (Consul
                // returns the first CNAME when nothing else answers).
                if a.answers.is_empty()
                    && let Some(host) = hostname
                {
                    a.answers.push(cname(self.qname, host, ttl));
                }
                if self.qtype == RecordType::ANY {
                    self.meta_txt_of(rows, ttl, &mut a.answers);
                }
            }
            RecordType::TXT => self.meta_txt_of(rows, ttl, &mut a.answers),
            _ => {}
        }
    }

    fn srv(&self, rows: &[Instance<'_>], ttl: u32, a: &mut Answer) {
        let dc = self.ctx.datacenter;
        let mut seen = HashSet::new();
        let mut targets = HashSet::new();
        for r in rows {
            if a.answers.len() >= self.ctx.max_answers {
                break;
            }
            let s = &r.service;
            if !seen.insert((&r.node.node, &s.address, s.port)) {
                continue;
            }
            let weight = if r.warning {
                s.weights.warning
            } else {
                s.weights.passing
            };
            let weight = weight.clamp(0, u16::MAX as i32) as u16;
            let (target, ip) = match r.target {
                Some((target, ip)) => (target.clone(), *ip),
                None => srv_target(r.node, s, dc, self.zone),
            };
            a.answers.push(Record::from_rdata(
                self.qname.clone(),
                ttl,
                RData::SRV(SRV::new(1, weight, s.port, target.clone())),
            ));
            if !targets.insert(target.clone()) {
                continue;
            }
            if let Some(ip) = ip {
                a.additionals
                    .push(Record::from_rdata(target.clone(), ttl, ip_rdata(ip)));
            }
            if s.address.is_empty() && self.ctx.opts.enable_additional_node_meta_txt {
                a.additionals.extend(meta_txt(&target, &r.node.meta, ttl));
            }
        }
    }

    /// Node meta TXT of the (distinct) nodes of `rows`, named by the question.
    fn meta_txt_of(&self, rows: &[Instance<'_>], ttl: u32, out: &mut Vec<Record>) {
        let mut nodes = HashSet::new();
        for r in rows {
            if nodes.insert(&r.node.node) {
                out.extend(meta_txt(self.qname, &r.node.meta, ttl));
            }
        }
    }

    /// False when the node is unknown (NXDOMAIN).
    fn node(&self, store: &Store, node: &str, a: &mut Answer) -> bool {
        let catalog = store.catalog();
        let Some(n): Option<&Node> = catalog
            .node(node)
            .or_else(|| catalog.nodes().find(|n| n.node.eq_ignore_ascii_case(node)))
        else {
            return false;
        };
        let ttl = ttl_secs(self.ctx.opts.node_ttl);
        match n.address.parse::<IpAddr>() {
            Ok(ip) => a
                .answers
                .extend(self.ip_record(self.qname.clone(), ip, ttl)),
            Err(_)
                if matches!(
                    self.qtype,
                    RecordType::A | RecordType::AAAA | RecordType::ANY
                ) =>
            {
                a.answers.push(cname(self.qname, &n.address, ttl));
            }
            Err(_) => {}
        }
        match self.qtype {
            RecordType::TXT | RecordType::ANY => {
                a.answers.extend(meta_txt(self.qname, &n.meta, ttl));
            }
            RecordType::A | RecordType::AAAA if self.ctx.opts.enable_additional_node_meta_txt => {
                a.additionals.extend(meta_txt(self.qname, &n.meta, ttl));
            }
            _ => {}
        }
        true
    }

    /// `HEX.addr`: the record in Answer when its type was asked, else in Additional.
    fn addr(&self, ip: IpAddr, a: &mut Answer) {
        let ttl = ttl_secs(self.ctx.opts.node_ttl);
        match self.ip_record(self.qname.clone(), ip, ttl) {
            Some(rec) => a.answers.push(rec),
            None => a
                .additionals
                .push(Record::from_rdata(self.qname.clone(), ttl, ip_rdata(ip))),
        }
    }

    /// An A/AAAA record when its family matches the question (ANY takes both).
    fn ip_record(&self, owner: Name, ip: IpAddr, ttl: u32) -> Option<Record> {
        let fits = matches!(
            (self.qtype, ip),
            (RecordType::ANY, _)
                | (RecordType::A, IpAddr::V4(_))
                | (RecordType::AAAA, IpAddr::V6(_))
        );
        fits.then(|| Record::from_rdata(owner, ttl, ip_rdata(ip)))
    }
}

/// An SRV target and the address for its additional record: `<node>.node.<dc>.<zone>`
/// for instances at their node's address, `<hex>.addr.<dc>.<zone>` for those
/// with their own IP, the hostname itself (resolved by the client) otherwise.
pub(super) fn srv_target(
    node: &Node,
    service: &NodeService,
    dc: &str,
    zone: &str,
) -> (Name, Option<IpAddr>) {
    if service.address.is_empty() {
        let target = name(&format!("{}.node.{dc}.{zone}", node.node));
        (target, node.address.parse::<IpAddr>().ok())
    } else if let Ok(ip) = service.address.parse::<IpAddr>() {
        (name(&format!("{}.addr.{dc}.{zone}", ip_hex(ip))), Some(ip))
    } else {
        let host = format!("{}.", service.address.trim_end_matches('.'));
        (name(&host), None)
    }
}

/// `owner CNAME host.` for an address that is a hostname.
fn cname(owner: &Name, host: &str, ttl: u32) -> Record {
    let target = name(&format!("{}.", host.trim_end_matches('.')));
    Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(target)))
}

fn ip_rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

/// One TXT record per meta pair, RFC 1464-encoded unless the key starts with `rfc1035-`.
fn meta_txt(owner: &Name, meta: &Meta, ttl: u32) -> Vec<Record> {
    meta.iter()
        .map(|(k, v)| {
            let text = if k.starts_with("rfc1035-") {
                v.clone()
            } else {
                rfc1464(k, v)
            };
            Record::from_rdata(owner.clone(), ttl, RData::TXT(TXT::new(vec![text])))
        })
        .collect()
}

/// `key=value` with Consul's escaping: backquotes doubled, `=` in the key
/// and the key's leading/trailing spaces backquoted.
pub fn rfc1464(key: &str, value: &str) -> String {
    let key = key.replace('`', "``").replace('=', "`=");
    let trimmed_start = key.trim_start_matches(' ');
    let leading = key.len() - trimmed_start.len();
    let core = trimmed_start.trim_end_matches(' ');
    let trailing = trimmed_start.len() - core.len();
    format!(
        "{}{}{}={}",
        "` ".repeat(leading),
        core,
        "` ".repeat(trailing),
        value.replace('`', "``")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::parse;
    use crate::state::{Command, Request};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use registry_api::{CatalogRegistration, HealthCheck, NodeService};
    use std::time::Duration;

    fn register(store: &mut Store, node: &str, addr: &str, svc: Option<NodeService>) {
        let idx = store.index() + 1;
        let reg = CatalogRegistration {
            node: node.into(),
            address: addr.into(),
            service: svc,
            ..Default::default()
        };
        store.apply(
            idx,
            &Request {
                now_ms: 0,
                cmd: Command::Register(Box::new(reg)),
            },
        );
    }

    fn check(store: &mut Store, node: &str, id: &str, service_id: &str, status: &str) {
        let idx = store.index() + 1;
        let reg = CatalogRegistration {
            node: node.into(),
            check: Some(HealthCheck {
                node: node.into(),
                check_id: id.into(),
                name: id.into(),
                status: status.into(),
                service_id: service_id.into(),
                ..Default::default()
            }),
            skip_node_update: true,
            ..Default::default()
        };
        store.apply(
            idx,
            &Request {
                now_ms: 0,
                cmd: Command::Register(Box::new(reg)),
            },
        );
    }

    fn svc(id: &str, name: &str, port: u16, tags: &[&str], addr: &str) -> NodeService {
        NodeService {
            id: id.into(),
            service: name.into(),
            port,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            address: addr.into(),
            ..Default::default()
        }
    }

    /// web3 on n1 (10.0.0.1) and n2 (10.0.0.2), tagged v1/v2; db on n3 with
    /// its own IP; n1 carries node meta.
    fn store() -> Store {
        let mut s = Store::default();
        register(
            &mut s,
            "n1",
            "10.0.0.1",
            Some(svc("web3-1", "web3", 8080, &["v1"], "")),
        );
        register(
            &mut s,
            "n2",
            "10.0.0.2",
            Some(svc("web3-2", "web3", 8081, &["v2"], "")),
        );
        register(
            &mut s,
            "n3",
            "10.0.0.3",
            Some(svc("db", "db", 5432, &[], "10.9.9.9")),
        );
        register(&mut s, "n6", "2001:db8::6", None);
        let idx = s.index() + 1;
        let mut meta = Meta::new();
        meta.insert("rack".into(), "r1".into());
        s.apply(
            idx,
            &Request {
                now_ms: 0,
                cmd: Command::Register(Box::new(CatalogRegistration {
                    node: "n1".into(),
                    address: "10.0.0.1".into(),
                    node_meta: meta,
                    ..Default::default()
                })),
            },
        );
        s
    }

    fn ask(store: &Store, opts: &DnsOptions, q: &str, qtype: RecordType, seed: u64) -> Answer {
        let question =
            parse(q, qtype == RecordType::SRV, &opts.domain, &opts.alt_domain).expect("in zone");
        let ctx = Context {
            opts,
            datacenter: "dc1",
            now_unix: 1_700_000_000,
            max_answers: usize::MAX,
            cache: None,
        };
        let qname = Name::from_ascii(q).unwrap();
        answer(
            store,
            &question,
            &qname,
            qtype,
            &ctx,
            &mut StdRng::seed_from_u64(seed),
        )
    }

    fn srv_targets(a: &Answer) -> Vec<(u16, String)> {
        let mut v: Vec<_> = a
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::SRV(s) => (s.port, s.target.to_ascii()),
                other => panic!("not SRV: {other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn soa_and_ns_questions_name_the_servers() {
        let mut s = store();
        register(
            &mut s,
            "srv1",
            "10.0.1.1",
            Some(svc("consul", "consul", 8300, &[], "")),
        );
        let o = DnsOptions::default();
        for q in ["consul.", "web3.service.consul."] {
            let a = ask(&s, &o, q, RecordType::SOA, 1);
            assert_eq!(a.rcode, ResponseCode::NoError);
            assert_eq!(a.answers.len(), 1);
            assert_eq!(a.answers[0].record_type(), RecordType::SOA);
            assert_eq!(a.authority.len(), 1);
            assert_eq!(
                a.authority[0].data,
                RData::NS(NS(Name::from_ascii("srv1.node.dc1.consul.").unwrap()))
            );
            assert_eq!(a.additionals[0].data, RData::A(A([10, 0, 1, 1].into())));
        }
        let a = ask(&s, &o, "consul.", RecordType::NS, 1);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].name.to_ascii(), "consul.");
        assert!(a.authority.is_empty());
        assert_eq!(a.additionals.len(), 1);
    }

    #[test]
    fn ptr_names_nodes_then_services() {
        let s = store();
        let o = DnsOptions::default();
        let ctx = Context {
            opts: &o,
            datacenter: "dc1",
            now_unix: 1,
            max_answers: usize::MAX,
            cache: None,
        };
        let q = Name::from_ascii("1.0.0.10.in-addr.arpa.").unwrap();
        let a = ptr(&s, &q, "10.0.0.1".parse().unwrap(), &ctx).expect("node n1");
        assert_eq!(
            a.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("n1.node.dc1.consul.").unwrap()))
        );
        let a = ptr(&s, &q, "10.9.9.9".parse().unwrap(), &ctx).expect("service db");
        assert_eq!(
            a.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("db.service.dc1.consul.").unwrap()))
        );
        let a = ptr(&s, &q, "2001:db8:0::6".parse().unwrap(), &ctx).expect("node n6");
        assert_eq!(a.answers.len(), 1);
        assert!(ptr(&s, &q, "10.7.7.7".parse().unwrap(), &ctx).is_none());
    }

    #[test]
    fn hostname_addresses_answer_a_cname() {
        let mut s = store();
        register(
            &mut s,
            "n7",
            "10.0.0.7",
            Some(svc("ext", "ext", 443, &[], "api.example.com")),
        );
        register(&mut s, "n8", "db8.example.com", None);
        let o = DnsOptions::default();
        let a = ask(&s, &o, "ext.service.consul.", RecordType::A, 1);
        assert_eq!(
            a.answers,
            vec![Record::from_rdata(
                Name::from_ascii("ext.service.consul.").unwrap(),
                0,
                RData::CNAME(CNAME(Name::from_ascii("api.example.com.").unwrap()))
            )]
        );
        let a = ask(&s, &o, "n8.node.consul.", RecordType::AAAA, 1);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        let a = ask(&s, &o, "n8.node.consul.", RecordType::TXT, 1);
        assert!(a.answers.is_empty());
    }

    #[test]
    fn cached_instances_follow_health_changes() {
        let mut s = store();
        let o = DnsOptions::default();
        let cache = InstanceCache::default();
        let q = Name::from_ascii("web3.service.consul.").unwrap();
        let question = parse("web3.service.consul.", true, "consul.", "").unwrap();
        let ctx = Context {
            opts: &o,
            datacenter: "dc1",
            now_unix: 1,
            max_answers: usize::MAX,
            cache: Some(&cache),
        };
        let mut rng = StdRng::seed_from_u64(1);
        let a = answer(&s, &question, &q, RecordType::SRV, &ctx, &mut rng);
        assert_eq!(a.answers.len(), 2);
        // Served from the cache while nothing changed...
        assert!(Arc::ptr_eq(&cache.get(&s, "web3"), &cache.get(&s, "web3")));
        // ...and rebuilt when an instance turns critical, or its node does.
        check(&mut s, "n2", "svc-check", "web3-2", "critical");
        let a = answer(&s, &question, &q, RecordType::SRV, &ctx, &mut rng);
        assert_eq!(srv_targets(&a), vec![(8080, "n1.node.dc1.consul.".into())]);
        check(&mut s, "n1", "serfHealth", "", "critical");
        let a = answer(&s, &question, &q, RecordType::SRV, &ctx, &mut rng);
        assert_eq!(a.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn srv_with_additionals() {
        let s = store();
        let o = DnsOptions::default();
        let a = ask(&s, &o, "web3.service.consul.", RecordType::SRV, 1);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(
            srv_targets(&a),
            vec![
                (8080, "n1.node.dc1.consul.".to_string()),
                (8081, "n2.node.dc1.consul.".to_string())
            ]
        );
        assert!(a.answers.iter().all(|r| r.ttl == 0));
        let a_recs: Vec<_> = a
            .additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .collect();
        assert_eq!(a_recs.len(), 2);
        // n1's meta as TXT next to its address.
        let txt: Vec<_> = a
            .additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::TXT)
            .collect();
        assert_eq!(txt.len(), 1);
        assert_eq!(txt[0].name.to_ascii(), "n1.node.dc1.consul.");
        assert!(a.authority.is_empty());
    }

    #[test]
    fn service_with_own_ip_uses_addr_target() {
        let s = store();
        let o = DnsOptions::default();
        let a = ask(&s, &o, "db.service.dc1.consul.", RecordType::SRV, 1);
        assert_eq!(
            srv_targets(&a),
            vec![(5432, "0a090909.addr.dc1.consul.".to_string())]
        );
        assert_eq!(a.additionals.len(), 1);
        assert_eq!(a.additionals[0].data, RData::A(A([10, 9, 9, 9].into())));
        let a = ask(&s, &o, "db.service.consul.", RecordType::A, 1);
        assert_eq!(a.answers[0].data, RData::A(A([10, 9, 9, 9].into())));
    }

    #[test]
    fn tags_and_health_filters() {
        let mut s = store();
        let mut o = DnsOptions::default();
        let a = ask(&s, &o, "v2.web3.service.consul.", RecordType::SRV, 1);
        assert_eq!(srv_targets(&a), vec![(8081, "n2.node.dc1.consul.".into())]);
        let a = ask(&s, &o, "_web3._v1.service.consul.", RecordType::SRV, 1);
        assert_eq!(srv_targets(&a), vec![(8080, "n1.node.dc1.consul.".into())]);
        let a = ask(&s, &o, "v9.web3.service.consul.", RecordType::SRV, 1);
        assert_eq!(a.rcode, ResponseCode::NXDomain);

        // A critical node check (serfHealth) drops every instance on the node.
        check(&mut s, "n1", "serfHealth", "", "critical");
        let a = ask(&s, &o, "web3.service.consul.", RecordType::SRV, 1);
        assert_eq!(srv_targets(&a), vec![(8081, "n2.node.dc1.consul.".into())]);
        // A warning service check stays unless only_passing.
        check(&mut s, "n2", "svc", "web3-2", "warning");
        assert_eq!(
            ask(&s, &o, "web3.service.consul.", RecordType::SRV, 1)
                .answers
                .len(),
            1
        );
        o.only_passing = true;
        let a = ask(&s, &o, "web3.service.consul.", RecordType::SRV, 1);
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert_eq!(a.authority.len(), 1);
        assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn nxdomain_nodata_and_soa() {
        let s = store();
        let o = DnsOptions::default();
        for q in [
            "nope.service.consul.",
            "nope.node.consul.",
            "web3.service.dc2.consul.",
            "geo.query.consul.",
            "web3.consul.",
        ] {
            let a = ask(&s, &o, q, RecordType::A, 1);
            assert_eq!(a.rcode, ResponseCode::NXDomain, "{q}");
            assert!(a.answers.is_empty());
            assert_eq!(a.authority.len(), 1);
        }
        let a = ask(&s, &o, "web3.service.consul.", RecordType::AAAA, 1);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        let RData::SOA(soa) = &a.authority[0].data else {
            panic!("no SOA")
        };
        assert_eq!(soa.mname.to_ascii(), "ns.consul.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.consul.");
        assert_eq!(soa.serial, 1_700_000_000);
        assert_eq!(soa.refresh, 3600);
        assert_eq!(a.authority[0].name.to_ascii(), "consul.");
    }

    #[test]
    fn node_lookups() {
        let s = store();
        let o = DnsOptions {
            node_ttl: Duration::from_secs(7),
            ..DnsOptions::default()
        };
        let a = ask(&s, &o, "N1.node.consul.", RecordType::A, 1);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].ttl, 7);
        assert_eq!(a.additionals.len(), 1);
        let a = ask(&s, &o, "n1.node.dc1.consul.", RecordType::TXT, 1);
        assert_eq!(
            a.answers[0].data,
            RData::TXT(TXT::new(vec!["rack=r1".into()]))
        );
        let a = ask(&s, &o, "n1.node.consul.", RecordType::ANY, 1);
        assert_eq!(a.answers.len(), 2);
        let a = ask(&s, &o, "n6.node.consul.", RecordType::AAAA, 1);
        assert_eq!(a.answers.len(), 1);
        let a = ask(&s, &o, "n6.node.consul.", RecordType::A, 1);
        assert_eq!(
            (a.rcode, a.answers.len(), a.authority.len()),
            (ResponseCode::NoError, 0, 1)
        );
    }

    #[test]
    fn addr_lookups() {
        let s = store();
        let o = DnsOptions::default();
        let a = ask(&s, &o, "7f000001.addr.dc1.consul.", RecordType::A, 1);
        assert_eq!(a.answers[0].data, RData::A(A([127, 0, 0, 1].into())));
        let a = ask(&s, &o, "7f000001.addr.dc1.consul.", RecordType::SRV, 1);
        assert!(a.answers.is_empty());
        assert_eq!(a.additionals.len(), 1);
        let a = ask(&s, &o, "7f0001.addr.dc1.consul.", RecordType::A, 1);
        assert_eq!(a.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn alt_domain_answers_in_its_zone() {
        let s = store();
        let o = DnsOptions {
            alt_domain: "example.".into(),
            ..DnsOptions::default()
        };
        let a = ask(&s, &o, "web3.service.example.", RecordType::SRV, 1);
        assert!(
            srv_targets(&a)
                .iter()
                .all(|(_, t)| t.ends_with(".node.dc1.example."))
        );
        let a = ask(&s, &o, "nope.service.example.", RecordType::SRV, 1);
        assert_eq!(a.authority[0].name.to_ascii(), "example.");
    }

    #[test]
    fn shuffled_and_limited() {
        let mut s = Store::default();
        for i in 0..10 {
            register(
                &mut s,
                &format!("m{i}"),
                &format!("10.1.0.{i}"),
                Some(svc("api", "api", 80, &[], "")),
            );
        }
        let mut o = DnsOptions::default();
        o.service_ttl.insert("*".into(), Duration::from_secs(30));
        let orders: HashSet<Vec<String>> = (0..5)
            .map(|seed| {
                let a = ask(&s, &o, "api.service.consul.", RecordType::A, seed);
                a.answers.iter().map(|r| r.data.to_string()).collect()
            })
            .collect();
        assert!(orders.len() > 1, "answers are shuffled per query");
        let a = ask(&s, &o, "api.service.consul.", RecordType::A, 1);
        assert_eq!(a.answers.len(), 10);
        assert!(a.answers.iter().all(|r| r.ttl == 30));
        o.a_record_limit = 4;
        assert_eq!(
            ask(&s, &o, "api.service.consul.", RecordType::A, 1)
                .answers
                .len(),
            4
        );
        // The limit does not apply to SRV.
        assert_eq!(
            ask(&s, &o, "api.service.consul.", RecordType::SRV, 1)
                .answers
                .len(),
            10
        );
    }

    #[test]
    fn rfc1464_escaping() {
        assert_eq!(rfc1464("rack", "r1"), "rack=r1");
        assert_eq!(rfc1464("a=b", "c`d"), "a`=b=c``d");
        assert_eq!(rfc1464(" k ", "v"), "` k` =v");
    }
}
