//! Question name → what is looked up (consul.md §3.1–3.2). Pure.
//!
//! The zone (`domain` or `alt_domain`) is stripped, then labels are scanned
//! right to left for the first keyword; labels left of it name the thing,
//! labels right of it are the locality (`<dc>` or `<dc>.dc`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a question asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `[TAG.]NAME.service[.DC]` or `_NAME._TAG[.service][.DC]`.
    Service {
        /// Service name (lowercase).
        name: String,
        /// Tag filter (lowercase); `None` for none or `_tcp`/`_udp`.
        tag: Option<String>,
        /// Datacenter, if given.
        dc: Option<String>,
    },
    /// `NODE.node[.DC]`; node names may contain dots.
    Node {
        /// Node name (lowercase).
        name: String,
        /// Datacenter, if given.
        dc: Option<String>,
    },
    /// `HEX.addr[.DC]`: 8 hex digits (IPv4) or 32 (IPv6).
    Addr {
        /// The encoded address.
        ip: IpAddr,
        /// Datacenter, if given.
        dc: Option<String>,
    },
    /// `NAME.query[.DC]` or `_NAME._tcp.query[.DC]`: a prepared query.
    Query {
        /// Query name or ID (lowercase).
        name: String,
        /// Datacenter, if given.
        dc: Option<String>,
    },
}

impl Lookup {
    /// The datacenter the question named, if any.
    pub fn dc(&self) -> Option<&str> {
        match self {
            Lookup::Service { dc, .. }
            | Lookup::Node { dc, .. }
            | Lookup::Addr { dc, .. }
            | Lookup::Query { dc, .. } => dc.as_deref(),
        }
    }
}

/// A question inside one of our zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The zone the question used, lowercase with the trailing dot; answers
    /// name their targets in it.
    pub zone: String,
    /// `None` for names in the zone that mean nothing (answered NXDOMAIN).
    pub lookup: Option<Lookup>,
}

/// Parses a question name. `None` when the name is outside both zones.
/// `srv` tells whether the question is for SRV records (a `_` label then
/// implies `service`).
pub fn parse(qname: &str, srv: bool, domain: &str, alt_domain: &str) -> Option<Question> {
    let name = qname.to_ascii_lowercase();
    let name = if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    };
    let (zone, rest) = [domain, alt_domain]
        .into_iter()
        .filter(|z| !z.is_empty())
        .find_map(|z| strip_zone(&name, z).map(|rest| (z.to_string(), rest)))?;
    let labels: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('.').collect()
    };
    Some(Question {
        zone,
        lookup: lookup(&labels, srv),
    })
}

/// The part of `name` (with trailing dot) left of `zone`, without the dot.
fn strip_zone<'a>(name: &'a str, zone: &str) -> Option<&'a str> {
    if name == zone {
        return Some("");
    }
    name.strip_suffix(zone)?.strip_suffix('.')
}

fn lookup(labels: &[&str], srv: bool) -> Option<Lookup> {
    let (i, kind) = labels.iter().enumerate().rev().find_map(|(i, l)| {
        if matches!(
            *l,
            "service" | "connect" | "virtual" | "ingress" | "node" | "query" | "addr"
        ) {
            Some((i, *l))
        } else if srv && l.starts_with('_') {
            // `_web._tcp.consul`: the `_` label is the last query part.
            Some((i + 1, "service"))
        } else {
            None
        }
    })?;
    let parts = &labels[..i];
    let suffix = if kind == "service" && labels.get(i) != Some(&"service") {
        &labels[i..]
    } else {
        &labels[i + 1..]
    };
    let dc = locality(suffix)?;
    if parts.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    match kind {
        "service" => {
            let (name, tag) = match parts {
                [n, t] if n.starts_with('_') && t.starts_with('_') => {
                    let tag = &t[1..];
                    let tag = (!matches!(tag, "tcp" | "udp")).then(|| tag.to_string());
                    (n[1..].to_string(), tag)
                }
                [rest @ .., n] => {
                    let tag = (!rest.is_empty()).then(|| rest.join("."));
                    (n.to_string(), tag)
                }
                [] => return None,
            };
            (!name.is_empty()).then_some(Lookup::Service { name, tag, dc })
        }
        "node" => Some(Lookup::Node {
            name: parts.join("."),
            dc,
        }),
        "query" => {
            let name = match parts {
                [n, t] if n.starts_with('_') && t.starts_with('_') => n[1..].to_string(),
                _ => parts.join("."),
            };
            Some(Lookup::Query { name, dc })
        }
        "addr" => match parts {
            [hex] => Some(Lookup::Addr {
                ip: hex_ip(hex)?,
                dc,
            }),
            _ => None,
        },
        // connect, ingress, virtual: not served yet.
        _ => None,
    }
}

/// `[]`, `[dc]` or `[dc, "dc"]`; peers, partitions and namespaces are not supported.
fn locality(suffix: &[&str]) -> Option<Option<String>> {
    match suffix {
        [] => Some(None),
        [dc] | [dc, "dc"] if !dc.is_empty() => Some(Some(dc.to_string())),
        _ => None,
    }
}

/// The address of a reverse-lookup name (`4.3.2.1.in-addr.arpa.`, 32 nibbles
/// `.ip6.arpa.`); `None` for anything else, partial names included.
pub fn reverse_ip(qname: &str) -> Option<IpAddr> {
    let name = qname.to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let octets: Vec<u8> = rest
            .split('.')
            .map(|l| l.parse::<u8>().ok())
            .collect::<Option<_>>()?;
        let [d, c, b, a] = octets[..] else {
            return None;
        };
        return Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = rest.split('.').collect();
    if nibbles.len() != 32 || nibbles.iter().any(|n| n.len() != 1) {
        return None;
    }
    let hex: String = nibbles.into_iter().rev().collect();
    hex_ip(&hex)
}

/// `7f000001` → 127.0.0.1; 32 hex digits → an IPv6 address.
pub fn hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(hex, 16).ok()?,
        ))),
        32 => Some(IpAddr::V6(Ipv6Addr::from(
            u128::from_str_radix(hex, 16).ok()?,
        ))),
        _ => None,
    }
}

/// The `addr` label of an IP, the inverse of [`hex_ip`].
pub fn ip_hex(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, srv: bool) -> Option<Lookup> {
        parse(name, srv, "consul.", "alt.example.")
            .expect("in zone")
            .lookup
    }

    fn svc(name: &str, tag: Option<&str>, dc: Option<&str>) -> Option<Lookup> {
        Some(Lookup::Service {
            name: name.into(),
            tag: tag.map(Into::into),
            dc: dc.map(Into::into),
        })
    }

    #[test]
    fn service_forms() {
        assert_eq!(p("web3.service.consul.", false), svc("web3", None, None));
        assert_eq!(p("WEB3.Service.CONSUL", false), svc("web3", None, None));
        assert_eq!(
            p("web3.service.dc1.consul.", false),
            svc("web3", None, Some("dc1"))
        );
        assert_eq!(
            p("web3.service.dc1.dc.consul.", false),
            svc("web3", None, Some("dc1"))
        );
        assert_eq!(
            p("v1.web3.service.consul.", false),
            svc("web3", Some("v1"), None)
        );
        assert_eq!(
            p("a.b.web3.service.consul.", false),
            svc("web3", Some("a.b"), None)
        );
    }

    #[test]
    fn rfc2782_forms() {
        assert_eq!(
            p("_web3._tcp.service.consul.", true),
            svc("web3", None, None)
        );
        assert_eq!(
            p("_web3._udp.service.consul.", true),
            svc("web3", None, None)
        );
        assert_eq!(
            p("_web3._v1.service.dc1.consul.", true),
            svc("web3", Some("v1"), Some("dc1"))
        );
        // `.service` is optional for SRV questions only.
        assert_eq!(p("_web3._tcp.consul.", true), svc("web3", None, None));
        assert_eq!(
            p("_web3._tcp.dc1.consul.", true),
            svc("web3", None, Some("dc1"))
        );
        assert_eq!(p("_web3._tcp.consul.", false), None);
    }

    #[test]
    fn node_addr_query_forms() {
        assert_eq!(
            p("foo.bar.node.dc1.consul.", false),
            Some(Lookup::Node {
                name: "foo.bar".into(),
                dc: Some("dc1".into())
            })
        );
        assert_eq!(
            p("7f000001.addr.dc1.consul.", false),
            Some(Lookup::Addr {
                ip: "127.0.0.1".parse().unwrap(),
                dc: Some("dc1".into())
            })
        );
        assert_eq!(
            p("20010db8000000000000000000000001.addr.consul.", false),
            Some(Lookup::Addr {
                ip: "2001:db8::1".parse().unwrap(),
                dc: None
            })
        );
        assert_eq!(p("7f00001.addr.consul.", false), None);
        assert_eq!(p("7f00000g.addr.consul.", false), None);
        assert_eq!(
            p("_geo._tcp.query.consul.", true),
            Some(Lookup::Query {
                name: "geo".into(),
                dc: None
            })
        );
        assert_eq!(
            p("geo.query.consul.", false),
            Some(Lookup::Query {
                name: "geo".into(),
                dc: None
            })
        );
    }

    #[test]
    fn zones_and_malformed_names() {
        let q = parse("web.service.alt.example.", false, "consul.", "alt.example.").unwrap();
        assert_eq!(q.zone, "alt.example.");
        assert_eq!(q.lookup, svc("web", None, None));
        assert_eq!(parse("example.com.", false, "consul.", ""), None);
        assert_eq!(parse("notconsul.", false, "consul.", ""), None);
        assert_eq!(p("consul.", false), None);
        assert_eq!(p("web.consul.", false), None);
        assert_eq!(p("service.consul.", false), None);
        assert_eq!(p("web.service.dc1.extra.consul.", false), None);
        assert_eq!(p("web.service.p1.peer.consul.", false), None);
        assert_eq!(p("web.connect.consul.", false), None);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_ip("4.3.2.10.in-addr.arpa."),
            Some("10.2.3.4".parse().unwrap())
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.IP6.ARPA.";
        assert_eq!(reverse_ip(v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(reverse_ip("3.2.10.in-addr.arpa."), None);
        assert_eq!(reverse_ip("256.3.2.10.in-addr.arpa."), None);
        assert_eq!(reverse_ip("0.8.b.d.0.1.0.0.2.ip6.arpa."), None);
        assert_eq!(reverse_ip("web.service.consul."), None);
    }

    #[test]
    fn hex_round_trip() {
        for ip in ["10.1.2.3", "::1", "2001:db8::42"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(hex_ip(&ip_hex(ip)), Some(ip));
        }
        assert_eq!(ip_hex("127.0.0.1".parse().unwrap()), "7f000001");
    }
}
