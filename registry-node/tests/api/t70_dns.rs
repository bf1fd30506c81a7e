//! DNS interface against a real in-process agent: SRV with additionals,
//! health and tag filters, RFC 2782 names, node/addr lookups, NXDOMAIN + SOA,
//! the UDP answer limit and TCP's full set. Queries are built with
//! hickory-proto's `Message` and sent over plain sockets.

use super::*;
use std::net::SocketAddr;

use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, RecordType};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn request(name: &str, qtype: RecordType, edns: bool) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.metadata.recursion_desired = true;
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
    }
    m
}

async fn udp(addr: SocketAddr, name: &str, qtype: RecordType, edns: bool) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let req = request(name, qtype, edns);
    sock.send_to(&req.to_vec().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("UDP reply in time")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.metadata.id, req.metadata.id);
    reply
}

async fn tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let bytes = request(name, qtype, false).to_vec().unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&bytes).await.unwrap();
    let len = s.read_u16().await.unwrap() as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

async fn register(a: &TestAgent, node: &str, addr: &str, svc: Value, status: &str) {
    let id = svc["ID"].as_str().unwrap().to_string();
    let body = json!({
        "Node": node, "Address": addr, "NodeMeta": {"rack": "r1"},
        "Service": svc,
        "Check": {"CheckID": format!("chk-{id}"), "Name": "c", "Status": status, "ServiceID": id},
    });
    let (status, text) = put(a, "/v1/catalog/register", body.to_string()).await;
    assert_eq!((status, text.as_str()), (200, "true"), "{body}");
}

/// Seed 002's `web3`: two instances on two nodes.
async fn seed_web3(a: &TestAgent) {
    for (i, tag) in [(1, "master"), (2, "replica")] {
        register(
            a,
            &format!("web{i}"),
            &format!("10.0.0.{i}"),
            json!({"ID": format!("web3-{i}"), "Service": "web3", "Tags": [tag], "Port": 10000 + i}),
            "passing",
        )
        .await;
    }
}

fn srv_ports(m: &Message) -> Vec<u16> {
    let mut ports: Vec<u16> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => s.port,
            other => panic!("not SRV: {other:?}"),
        })
        .collect();
    ports.sort();
    ports
}

fn dns_addr(a: &TestAgent) -> SocketAddr {
    a.handle.dns_addr.expect("DNS is served")
}

#[tokio::test]
async fn srv_answer_with_additionals_and_health() {
    let a = TestAgent::start().await;
    seed_web3(&a).await;
    let dns = dns_addr(&a);
    let m = udp(dns, "web3.service.consul.", RecordType::SRV, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(srv_ports(&m), vec![10001, 10002]);
    assert!(m.answers.iter().all(|r| r.ttl == 0));
    let addrs: Vec<_> = m
        .additionals
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .collect();
    assert_eq!(addrs.len(), 2);
    assert!(addrs.iter().all(|r| r.ttl == 0));
    assert!(
        addrs
            .iter()
            .all(|r| r.name.to_ascii().ends_with(".node.dc1.consul."))
    );

    // The failing instance disappears.
    register(
        &a,
        "web2",
        "10.0.0.2",
        json!({"ID": "web3-2", "Service": "web3", "Tags": ["replica"], "Port": 10002}),
        "critical",
    )
    .await;
    let m = udp(dns, "web3.service.consul.", RecordType::SRV, true).await;
    assert_eq!(srv_ports(&m), vec![10001]);
    a.shutdown().await;
}

#[tokio::test]
async fn tag_and_rfc2782_forms() {
    let a = TestAgent::start().await;
    seed_web3(&a).await;
    let dns = dns_addr(&a);
    let m = udp(dns, "master.web3.service.consul.", RecordType::SRV, true).await;
    assert_eq!(srv_ports(&m), vec![10001]);
    let m = udp(
        dns,
        "_web3._replica.service.dc1.consul.",
        RecordType::SRV,
        true,
    )
    .await;
    assert_eq!(srv_ports(&m), vec![10002]);
    let m = udp(dns, "_web3._tcp.service.consul.", RecordType::SRV, true).await;
    assert_eq!(srv_ports(&m), vec![10001, 10002]);
    let m = tcp(dns, "_web3._tcp.consul.", RecordType::SRV).await;
    assert_eq!(srv_ports(&m), vec![10001, 10002]);
    a.shutdown().await;
}

#[tokio::test]
async fn node_addr_nxdomain_refused() {
    let a = TestAgent::start().await;
    seed_web3(&a).await;
    let dns = dns_addr(&a);

    let m = udp(dns, "web1.node.consul.", RecordType::A, true).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::A(A::new(10, 0, 0, 1)));
    let m = udp(dns, "WEB1.node.dc1.consul.", RecordType::TXT, true).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data.to_string(), "rack=r1");

    let m = udp(dns, "0a000002.addr.dc1.consul.", RecordType::A, true).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(10, 0, 0, 2)));

    for name in [
        "nope.service.consul.",
        "nope.node.consul.",
        "web3.service.dc9.consul.",
    ] {
        let m = udp(dns, name, RecordType::A, true).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(m.authorities.len(), 1, "{name}");
        let RData::SOA(soa) = &m.authorities[0].data else {
            panic!("no SOA for {name}")
        };
        assert_eq!(soa.mname.to_ascii(), "ns.consul.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.consul.");
    }
    // The name exists, the type does not: NOERROR with the SOA.
    let m = udp(dns, "web3.service.consul.", RecordType::AAAA, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);

    let m = udp(dns, "example.com.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let m = tcp(dns, "consul.", RecordType::AXFR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    a.shutdown().await;
}

#[tokio::test]
async fn udp_limit_without_edns_and_full_set_over_tcp() {
    let a = TestAgent::start().await;
    for i in 1..=10 {
        register(
            &a,
            &format!("api{i}"),
            &format!("10.1.0.{i}"),
            json!({"ID": format!("api-{i}"), "Service": "api", "Port": 80}),
            "passing",
        )
        .await;
    }
    let dns = dns_addr(&a);
    let m = udp(dns, "api.service.consul.", RecordType::A, false).await;
    assert_eq!(m.answers.len(), 3);
    // enable_truncate is off: Consul trims silently.
    assert!(!m.metadata.truncation);
    let m = udp(dns, "api.service.consul.", RecordType::SRV, false).await;
    assert_eq!(m.answers.len(), 3);
    let m = udp(dns, "api.service.consul.", RecordType::A, true).await;
    assert_eq!(m.answers.len(), 10, "the client's EDNS size is honoured");
    let m = tcp(dns, "api.service.consul.", RecordType::A).await;
    assert_eq!(m.answers.len(), 10);
    let m = tcp(dns, "api.service.consul.", RecordType::SRV).await;
    assert_eq!(m.answers.len(), 10);
    let addrs = m
        .additionals
        .iter()
        .filter(|r| r.record_type() == RecordType::A);
    assert_eq!(addrs.count(), 10);
    a.shutdown().await;
}

#[tokio::test]
async fn client_agent_answers_servfail_for_now() {
    let mut opts = registry_node::agent::AgentOptions::for_test();
    opts.server = false;
    opts.bootstrap = false;
    let listeners = registry_node::agent::Listeners::loopback(false)
        .await
        .unwrap();
    let a = TestAgent::start_on(opts, listeners).await;
    let m = udp(dns_addr(&a), "web3.service.consul.", RecordType::SRV, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    a.shutdown().await;
}

#[tokio::test]
async fn prepared_query_by_name_and_by_template() {
    let a = TestAgent::start().await;
    seed_web3(&a).await;
    let addr = dns_addr(&a);
    let resp = a
        .http
        .post(a.url("/v1/query"))
        .body(r#"{"Name": "web-master", "Service": {"Service": "web3", "Tags": ["master"]}, "DNS": {"TTL": "7s"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = udp(addr, "web-master.query.consul.", RecordType::SRV, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(srv_ports(&m), [10001]);
    assert!(m.answers.iter().all(|r| r.ttl == 7), "the query's DNS TTL");
    // RFC 2782 form of the same query.
    let m = udp(
        addr,
        "_web-master._tcp.query.consul.",
        RecordType::SRV,
        true,
    )
    .await;
    assert_eq!(srv_ports(&m), [10001]);
    // A template answers any name with its prefix.
    let resp = a
        .http
        .post(a.url("/v1/query"))
        .body(r#"{"Name": "web", "Template": {"Type": "name_prefix_match"}, "Service": {"Service": "${name.full}"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = udp(addr, "web3.query.consul.", RecordType::SRV, true).await;
    let mut ports = srv_ports(&m);
    ports.sort();
    assert_eq!(ports, [10001, 10002]);
    let m = udp(addr, "nosuch.query.consul.", RecordType::SRV, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    a.shutdown().await;
}

/// A stub upstream DNS server on loopback: answers `A` for `example.org.`,
/// NXDOMAIN for other names, or SERVFAIL for everything when `broken`.
async fn stub_upstream(broken: bool) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
            resp.metadata.recursion_available = true;
            let q = req.queries[0].clone();
            let known = q.name().to_ascii() == "example.org.";
            resp.add_query(q.clone());
            resp.metadata.response_code = if broken {
                ResponseCode::ServFail
            } else if known {
                resp.add_answer(hickory_server::proto::rr::Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A([93, 184, 216, 34].into())),
                ));
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            let _ = sock.send_to(&resp.to_vec().unwrap(), from).await;
        }
    });
    addr
}

#[tokio::test]
async fn recursors_answer_outside_the_zone_in_turn() {
    let (broken, good) = (stub_upstream(true).await, stub_upstream(false).await);
    let mut opts = registry_node::agent::AgentOptions::for_test();
    opts.dns.recursors = vec![broken, good];
    let a = TestAgent::start_with(opts).await;
    let addr = dns_addr(&a);
    // The first recursor fails; the second answers; we relay it, not authoritative.
    let m = udp(addr, "example.org.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);
    let ips: Vec<_> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(ips, [std::net::Ipv4Addr::new(93, 184, 216, 34)]);
    let m = udp(addr, "nosuch.example.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Our own zone is still answered by us.
    let m = udp(addr, "nosuch.service.consul.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    a.shutdown().await;

    // With only a failing recursor: SERVFAIL.
    let mut opts = registry_node::agent::AgentOptions::for_test();
    opts.dns.recursors = vec![broken];
    let a = TestAgent::start_with(opts).await;
    let m = udp(dns_addr(&a), "example.org.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    a.shutdown().await;
}

#[tokio::test]
async fn service_names_that_are_not_dns_labels_are_not_answered() {
    let a = TestAgent::start().await;
    register(
        &a,
        "n1",
        "10.0.0.9",
        json!({"ID": "under-1", "Service": "web_3", "Port": 80}),
        "passing",
    )
    .await;
    // Registered (and warned about), but DNS answers it consistently as unknown.
    let (body, _) = get_json(&a, "/v1/catalog/service/web_3").await;
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    let m = udp(dns_addr(&a), "web_3.service.consul.", RecordType::SRV, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    a.shutdown().await;
}

#[tokio::test]
async fn soa_ns_and_ptr() {
    let a = TestAgent::start().await;
    seed_web3(&a).await;
    let dns = dns_addr(&a);
    // The server registers itself as `consul`; it is the zone's nameserver.
    let node = a.agent().opts.node_name.clone();
    let ns_name = format!("{}.node.dc1.consul.", node.to_ascii_lowercase());
    let mut m = udp(dns, "consul.", RecordType::SOA, true).await;
    for _ in 0..50 {
        if !m.authorities.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        m = udp(dns, "consul.", RecordType::SOA, true).await;
    }
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities.len(), 1, "{m:?}");
    assert_eq!(
        m.authorities[0].data.to_string().to_ascii_lowercase(),
        ns_name
    );
    let m = udp(dns, "consul.", RecordType::NS, true).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        m.additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .count(),
        1
    );

    // Reverse lookups: node addresses, then service addresses, else NXDOMAIN.
    let m = udp(dns, "2.0.0.10.in-addr.arpa.", RecordType::PTR, true).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data.to_string(), "web2.node.dc1.consul.");
    register(
        &a,
        "web9",
        "10.0.0.9",
        json!({"ID": "db", "Service": "db", "Address": "10.1.1.1", "Port": 5432}),
        "passing",
    )
    .await;
    let m = udp(dns, "1.1.1.10.in-addr.arpa.", RecordType::PTR, true).await;
    assert_eq!(m.answers[0].data.to_string(), "db.service.dc1.consul.");
    let m = udp(dns, "7.7.7.10.in-addr.arpa.", RecordType::PTR, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    a.shutdown().await;
}
