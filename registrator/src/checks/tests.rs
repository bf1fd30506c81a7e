use std::time::Duration;

use super::*;
use crate::service::Origin;

fn service(attrs: &[(&str, &str)]) -> Service {
    Service {
        id: "host1:web.1:80".into(),
        name: "web-80".into(),
        ip: "10.0.0.5".into(),
        port: 32768,
        tags: vec!["a".into(), "b".into()],
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ttl: 0,
        origin: Origin {
            container_id: "c3802cbce76a281d88d0d186de940e923a9e27076c57a7e29d7403e855e0553d".into(),
            exposed_port: 80,
            ..Default::default()
        },
        health: None,
    }
}

fn check(attrs: &[(&str, &str)]) -> CheckDefinition {
    consul_check(&service(attrs)).unwrap().expect("a check")
}

fn secs(n: u64) -> Option<GoDuration> {
    Some(GoDuration(Duration::from_secs(n)))
}

#[test]
fn no_check_attributes_no_check() {
    assert_eq!(consul_check(&service(&[])), Ok(None));
    // Modifiers alone make no check.
    assert_eq!(
        consul_check(&service(&[
            ("check_interval", "5s"),
            ("check_timeout", "1s")
        ])),
        Ok(None)
    );
}

#[test]
fn http_and_https() {
    let c = check(&[
        ("check_http", "/health"),
        ("check_http_method", "HEAD"),
        ("check_timeout", "1s"),
        ("check_initial_status", "passing"),
        ("check_deregister_after", "10m"),
    ]);
    assert_eq!(c.http, "http://10.0.0.5:32768/health");
    assert_eq!(c.method, "HEAD");
    assert_eq!(c.interval, secs(10));
    assert_eq!(c.timeout, secs(1));
    assert_eq!(c.status, "passing");
    assert_eq!(c.deregister_critical_service_after, secs(600));

    let c = check(&[
        ("check_https", "/ready"),
        ("check_https_method", "POST"),
        ("check_http_method", "HEAD"),
        ("check_interval", "3s"),
    ]);
    assert_eq!(c.http, "https://10.0.0.5:32768/ready");
    assert_eq!(c.method, "POST");
    assert_eq!(c.interval, secs(3));
}

#[test]
fn ipv6_targets_are_bracketed() {
    let mut s = service(&[("check_http", "/")]);
    s.ip = "fd00::5".into();
    let c = consul_check(&s).unwrap().unwrap();
    assert_eq!(c.http, "http://[fd00::5]:32768/");
    s.attrs = [("check_tcp".to_string(), "x".to_string())].into();
    assert_eq!(consul_check(&s).unwrap().unwrap().tcp, "[fd00::5]:32768");
}

#[test]
fn cmd_is_the_legacy_helper_form() {
    let c = check(&[("check_cmd", "/bin/check --fast")]);
    assert_eq!(
        c.args,
        ["check-cmd", "c3802cbce76a", "80", "/bin/check --fast"]
    );
    assert_eq!(c.interval, secs(10));
}

#[test]
fn script_is_substituted_and_run_by_a_shell() {
    let c = check(&[(
        "check_script",
        "nc -z $SERVICE_IP $SERVICE_PORT && echo $SERVICE_IP",
    )]);
    assert_eq!(
        c.args,
        ["sh", "-c", "nc -z 10.0.0.5 32768 && echo 10.0.0.5"]
    );
    assert_eq!(c.interval, secs(10));
    assert_eq!(
        c.timeout, None,
        "timeout is not applied to scripts (upstream)"
    );
}

#[test]
fn ttl_check_has_no_interval() {
    let c = check(&[
        ("check_ttl", "30s"),
        ("check_interval", "5s"),
        ("check_timeout", "1s"),
    ]);
    assert_eq!(c.ttl, secs(30));
    assert_eq!(c.interval, None);
    assert_eq!(c.timeout, None);
}

#[test]
fn tcp_and_grpc() {
    let c = check(&[("check_tcp", "true"), ("check_timeout", "2s")]);
    assert_eq!(c.tcp, "10.0.0.5:32768");
    assert_eq!(c.timeout, secs(2));

    let c = check(&[("check_grpc", "true"), ("check_tls_skip_verify", "true")]);
    assert_eq!(c.grpc, "10.0.0.5:32768");
    assert!(
        !c.grpc_use_tls && !c.tls_skip_verify,
        "skip-verify needs use-tls"
    );
    let c = check(&[
        ("check_grpc", "true"),
        ("check_grpc_use_tls", "true"),
        ("check_tls_skip_verify", "true"),
    ]);
    assert!(c.grpc_use_tls && c.tls_skip_verify);
}

/// http → https → cmd → script → ttl → tcp → grpc: each beats all to its right.
#[test]
fn precedence() {
    let all = [
        ("check_http", "/h"),
        ("check_https", "/s"),
        ("check_cmd", "cmd"),
        ("check_script", "script"),
        ("check_ttl", "30s"),
        ("check_tcp", "1"),
        ("check_grpc", "1"),
    ];
    let kind = |c: &CheckDefinition| -> &'static str {
        if c.http.starts_with("http:") {
            "check_http"
        } else if c.http.starts_with("https:") {
            "check_https"
        } else if c.args.first().map(String::as_str) == Some("check-cmd") {
            "check_cmd"
        } else if !c.args.is_empty() {
            "check_script"
        } else if c.ttl.is_some() {
            "check_ttl"
        } else if !c.tcp.is_empty() {
            "check_tcp"
        } else {
            "check_grpc"
        }
    };
    for start in 0..all.len() {
        let c = check(&all[start..]);
        assert_eq!(kind(&c), all[start].0);
    }
    // Empty values are unset.
    assert_eq!(
        kind(&check(&[("check_http", ""), ("check_tcp", "1")])),
        "check_tcp"
    );
}

#[test]
fn bad_durations_are_errors() {
    for key in ["check_interval", "check_timeout", "check_deregister_after"] {
        let err = consul_check(&service(&[("check_http", "/"), (key, "soon")])).unwrap_err();
        assert_eq!(
            err,
            CheckError::BadDuration {
                key: key.into(),
                value: "soon".into()
            }
        );
    }
    let err = consul_check(&service(&[("check_ttl", "1 minute")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SERVICE_CHECK_TTL is not a duration: \"1 minute\""
    );
}

#[test]
fn meta_drops_invalid_keys_and_check_keys() {
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(513);
    let s = service(&[
        ("region", "eu"),
        ("team_name", "payments"),
        ("tier-1", ""),
        ("check_http", "/health"),
        ("traefik.enable", "true"),
        ("consul-internal", "x"),
        (long_key.as_str(), "x"),
        ("big", long_value.as_str()),
    ]);
    let (meta, dropped) = consul_meta(&s);
    let kept: Vec<_> = meta.keys().map(String::as_str).collect();
    assert_eq!(kept, ["region", "team_name", "tier-1"]);
    let mut dropped_want = vec![
        "big",
        "check_http",
        "consul-internal",
        long_key.as_str(),
        "traefik.enable",
    ];
    dropped_want.sort();
    assert_eq!(dropped, dropped_want);
}

#[test]
fn meta_keeps_at_most_64_pairs() {
    let keys: Vec<String> = (0..70).map(|i| format!("k{i:02}")).collect();
    let attrs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    let (meta, dropped) = consul_meta(&service(&attrs));
    assert_eq!(meta.len(), 64);
    assert_eq!(dropped, ["k64", "k65", "k66", "k67", "k68", "k69"]);
}

/// The payload of A.7 (upstream's README example), as JSON.
#[test]
fn registration_payload() {
    let s = service(&[
        ("region", "eu"),
        ("check_http", "/health"),
        ("check_timeout", "1s"),
        ("check_http_method", "HEAD"),
        ("check_initial_status", "passing"),
        ("check_deregister_after", "10m"),
    ]);
    let json = serde_json::to_value(registration(&s).unwrap()).unwrap();
    assert_eq!(json["ID"], "host1:web.1:80");
    assert_eq!(json["Name"], "web-80");
    assert_eq!(json["Port"], 32768);
    assert_eq!(json["Address"], "10.0.0.5");
    assert_eq!(json["Tags"], serde_json::json!(["a", "b"]));
    assert_eq!(json["Meta"], serde_json::json!({"region": "eu"}));
    let check = &json["Check"];
    assert_eq!(check["HTTP"], "http://10.0.0.5:32768/health");
    assert_eq!(check["Interval"], "10s");
    assert_eq!(check["Timeout"], "1s");
    assert_eq!(check["Method"], "HEAD");
    assert_eq!(check["Status"], "passing");
    assert_eq!(check["DeregisterCriticalServiceAfter"], "10m0s");
    assert_eq!(json["Checks"], serde_json::json!([]));

    let bad = service(&[("check_http", "/"), ("check_interval", "x")]);
    assert!(registration(&bad).is_err());
}

#[test]
fn docker_health_becomes_a_ttl_check() {
    let mut s = service(&[("check_tcp", "1")]);
    assert_eq!(docker_health_check(&s), None);
    let cases = [
        (DockerHealth::Healthy, "passing"),
        (DockerHealth::Unhealthy, "critical"),
        (DockerHealth::Starting, "critical"),
    ];
    for (health, status) in cases {
        s.health = Some(health);
        let reg = registration(&s).unwrap();
        assert!(reg.check.is_some(), "the SERVICE_CHECK_* check stays");
        assert_eq!(reg.checks.len(), 1);
        let c = &reg.checks[0];
        assert_eq!(c.id, "host1:web.1:80:docker-health");
        assert_eq!(c.id, docker_health_check_id(&s.id));
        assert_eq!(c.name, DOCKER_HEALTH_CHECK_NAME);
        assert_eq!(c.ttl, secs(60));
        assert_eq!(c.status, status);
        assert_eq!(docker_health_status(health), status);
        assert_eq!(c.check_type(), "ttl");
    }
}
