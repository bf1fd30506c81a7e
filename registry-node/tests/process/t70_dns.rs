//! DNS against the real binary with `dig` (Debian dnsutils): the seed's
//! two-instance `web3` SRV answer, and `+noedns` truncation (with
//! `enable_truncate`) followed by dig's TCP retry that gets every record.

use super::*;

fn dig(port: i32, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed (apt-get install dnsutils)");
    assert!(out.status.success(), "dig {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn register(p: &Proc, node: &str, addr: &str, id: &str, svc: &str, port: u16) {
    let body = format!(
        r#"{{"Node":"{node}","Address":"{addr}","Service":{{"ID":"{id}","Service":"{svc}","Port":{port}}}}}"#
    );
    let (status, text) = http(
        "PUT",
        &format!("{}/v1/catalog/register", p.base),
        body.as_bytes(),
    )
    .expect("register");
    assert_eq!((status, text.as_str()), (200, "true"));
}

#[test]
fn dig_srv_and_tcp_retry() {
    let p = Proc::start(&["-dev", "-hcl=dns_config { enable_truncate = true }"]);
    assert!(p.dns_port > 0, "DNS port in the banner");
    register(&p, "web1", "10.0.0.1", "web3-1", "web3", 10001);
    register(&p, "web2", "10.0.0.2", "web3-2", "web3", 10002);

    let out = dig(p.dns_port, &["web3.service.consul", "SRV", "+short"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "1 1 10001 web1.node.dc1.consul.",
            "1 1 10002 web2.node.dc1.consul."
        ],
        "{out}"
    );

    for i in 1..=10 {
        register(
            &p,
            &format!("api{i}"),
            &format!("10.1.0.{i}"),
            &format!("api-{i}"),
            "api",
            80,
        );
    }
    // Without EDNS the UDP answer is cut to 3 with TC; dig retries over TCP.
    let out = dig(p.dns_port, &["api.service.consul", "A", "+noedns"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 10,"), "{out}");
    let out = dig(
        p.dns_port,
        &["api.service.consul", "A", "+noedns", "+ignore"],
    );
    assert!(out.contains("ANSWER: 3,"), "{out}");
}
