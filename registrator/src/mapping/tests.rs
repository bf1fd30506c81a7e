//! Mapping rules on stored `docker inspect` output (`tests/fixtures/*.json`, see its
//! README). Where a rule needs metadata the fixture lacks, the test edits the parsed
//! fixture in the open (`with_env`, `with_labels`) rather than storing near-copies.

use std::collections::HashMap;

use bollard::models::PortBinding;

use super::*;

const HOST: &str = "docker-host-1";
const HOST_IP: &str = "192.168.50.10";

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<ContainerInspectResponse>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name,
            ".json"
        )))
        .expect($name)
    };
}

fn ctx() -> MappingContext {
    MappingContext {
        hostname: HOST.to_string(),
        resolved_host_ip: Some(HOST_IP.to_string()),
        ..Default::default()
    }
}

fn map(container: &ContainerInspectResponse, ctx: &MappingContext) -> Mapping {
    services(container, ctx).expect("mapping")
}

fn with_env(mut c: ContainerInspectResponse, env: &[&str]) -> ContainerInspectResponse {
    let config = c.config.as_mut().unwrap();
    config.env = Some(env.iter().map(|s| s.to_string()).collect());
    c
}

fn with_labels(
    mut c: ContainerInspectResponse,
    labels: &[(&str, &str)],
) -> ContainerInspectResponse {
    let config = c.config.as_mut().unwrap();
    config.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    );
    c
}

fn set_bindings(c: &mut ContainerInspectResponse, port: &str, bindings: &[(&str, &str)]) {
    let ports = c.network_settings.as_mut().unwrap().ports.as_mut().unwrap();
    ports.insert(
        port.to_string(),
        Some(
            bindings
                .iter()
                .map(|(ip, p)| PortBinding {
                    host_ip: Some(ip.to_string()),
                    host_port: Some(p.to_string()),
                })
                .collect(),
        ),
    );
}

fn names(m: &Mapping) -> Vec<&str> {
    m.services.iter().map(|s| s.name.as_str()).collect()
}

fn skipped(m: &Mapping) -> Vec<(Option<&str>, SkipReason)> {
    m.skipped
        .iter()
        .map(|s| (s.port.as_deref(), s.reason))
        .collect()
}

/// One published port: the whole Service, origin included.
#[test]
fn one_published_port() {
    let c = fixture!("bridge_one_port");
    let m = map(&c, &MappingContext { ttl: 30, ..ctx() });
    assert!(m.skipped.is_empty() && m.notes.is_empty());
    assert_eq!(
        m.services,
        vec![Service {
            id: "docker-host-1:cache:6379".into(),
            // registry.example.com:5000/cache/redis:7.2: base name, cut at ':'.
            name: "redis".into(),
            ip: HOST_IP.into(),
            port: 6379,
            tags: vec![],
            attrs: BTreeMap::new(),
            ttl: 30,
            origin: Origin {
                container_id: "b0c7d0903d23d046abb5f6166c70f812fc90c98628a91fe54a27f7120002d9e8"
                    .into(),
                container_name: "cache".into(),
                container_hostname: "b0c7d0903d23".into(),
                exposed_port: 6379,
                exposed_ip: "172.17.0.2".into(),
                host_port: 6379,
                host_ip: HOST_IP.into(),
                protocol: "tcp".into(),
            },
            health: None,
        }]
    );
}

/// Two ports: `SERVICE_NAME` gets the `-<port>` suffix, `SERVICE_443_NAME` does not;
/// ports sorted numerically (80 before 443); labels beat env; tags unescaped.
#[test]
fn two_ports_group_suffix_and_metadata() {
    let m = map(&fixture!("bridge_two_ports_metadata"), &ctx());
    assert_eq!(names(&m), ["web-80", "secure"]);
    let (web, secure) = (&m.services[0], &m.services[1]);
    assert_eq!(web.id, "docker-host-1:web.1:80");
    assert_eq!((web.ip.as_str(), web.port), (HOST_IP, 8080));
    assert_eq!(secure.id, "docker-host-1:web.1:443");
    assert_eq!(secure.port, 8443);
    assert_eq!(web.tags, ["prod", "v1,beta"]);
    let attrs = |s: &Service| {
        s.attrs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    };
    // region: the label (us) wins over the env (eu); SERVICE_80_CHECK_HTTP only on 80.
    assert_eq!(
        attrs(web),
        [
            "check_http=/health",
            "check_interval=5s",
            "region=us",
            "traefik.enable=true"
        ]
    );
    assert_eq!(
        attrs(secure),
        ["check_interval=5s", "region=us", "traefik.enable=true"]
    );
}

/// TCP and UDP on one number: both suffixed; UDP gets `:udp` and the `udp` tag.
#[test]
fn udp_ports() {
    let m = map(&fixture!("bridge_udp"), &ctx());
    assert_eq!(names(&m), ["coredns-53", "coredns-53"]);
    let (tcp, udp) = (&m.services[0], &m.services[1]);
    assert_eq!(tcp.id, "docker-host-1:dns:53");
    assert_eq!(udp.id, "docker-host-1:dns:53:udp");
    assert!(tcp.tags.is_empty());
    assert_eq!(udp.tags, ["udp"]);
    assert_eq!(udp.origin.protocol, "udp");
    assert_eq!(udp.port, 5353);
}

/// An exposed, unpublished port is skipped, and does not count for the group suffix.
#[test]
fn unpublished_port_is_skipped() {
    let m = map(&fixture!("bridge_unpublished"), &ctx());
    assert_eq!(names(&m), ["webapp"]);
    assert_eq!(skipped(&m), [(Some("443/tcp"), SkipReason::NotPublished)]);
    assert_eq!(m.skipped[0].to_string(), "port 443 not published on host");
}

/// `-internal`: container IP and exposed port; unpublished ports become eligible.
#[test]
fn internal_uses_container_ip_and_exposed_port() {
    let ctx = MappingContext {
        internal: true,
        forced_ip: Some("10.9.9.9".into()),
        ..ctx()
    };
    let m = map(&fixture!("bridge_unpublished"), &ctx);
    assert!(m.skipped.is_empty());
    let got: Vec<_> = m
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.ip.as_str(), s.port))
        .collect();
    // -ip is not applied with -internal.
    assert_eq!(
        got,
        [
            ("webapp-80", "172.17.0.4", 80),
            ("webapp-443", "172.17.0.4", 443)
        ]
    );
}

/// `--net=host`: every EXPOSEd port registers on the same number (master, #608).
#[test]
fn host_network_uses_exposed_ports() {
    let m = map(&fixture!("host_network"), &ctx());
    let got: Vec<_> = m
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.ip.as_str(), s.port))
        .collect();
    assert_eq!(
        got,
        [("webapp-80", HOST_IP, 80), ("webapp-443", HOST_IP, 443)]
    );
}

/// When the hostname does not resolve, `0.0.0.0` stays (upstream).
#[test]
fn unresolved_host_keeps_any_address() {
    let ctx = MappingContext {
        resolved_host_ip: None,
        ..ctx()
    };
    let m = map(&fixture!("bridge_one_port"), &ctx);
    assert_eq!(m.services[0].ip, "0.0.0.0");
}

/// Empty registrator hostname: the ID starts with the host IP before resolution.
#[test]
fn empty_hostname_uses_host_ip_in_id() {
    let ctx = MappingContext {
        hostname: String::new(),
        ..ctx()
    };
    let m = map(&fixture!("bridge_one_port"), &ctx);
    assert_eq!(m.services[0].id, "0.0.0.0:cache:6379");
    assert_eq!(m.services[0].ip, HOST_IP);
}

/// `-ip` replaces the host IP.
#[test]
fn forced_ip() {
    let ctx = MappingContext {
        forced_ip: Some("10.0.0.5".into()),
        ..ctx()
    };
    let m = map(&fixture!("bridge_two_ports_metadata"), &ctx);
    assert!(m.services.iter().all(|s| s.ip == "10.0.0.5"));
}

/// User-defined network: upstream registers the network IP with the published port;
/// `-ip` still wins.
#[test]
fn user_network_uses_network_ip() {
    let m = map(&fixture!("user_network"), &ctx());
    assert_eq!(names(&m), ["webapp"]);
    assert_eq!(
        (m.services[0].ip.as_str(), m.services[0].port),
        ("172.18.0.2", 9000)
    );
    let forced = MappingContext {
        forced_ip: Some("10.0.0.5".into()),
        ..ctx()
    };
    assert_eq!(
        map(&fixture!("user_network"), &forced).services[0].ip,
        "10.0.0.5"
    );
}

/// `container:<id>` mode: the IP of the network container, supplied by the caller;
/// it beats `-ip`. Without it the (empty) IP stays and a note says why.
#[test]
fn container_network_mode() {
    let c = fixture!("container_mode");
    let other = "b0c7d0903d23d046abb5f6166c70f812fc90c98628a91fe54a27f7120002d9e8";
    assert_eq!(network_container(&c), Some(other));
    // The network container's IP, as the caller would compute it.
    let cache_ip = container_ip(&fixture!("bridge_one_port")).unwrap();
    let mut ctx = MappingContext {
        forced_ip: Some("10.0.0.5".into()),
        ..ctx()
    };
    ctx.network_container_ips
        .insert(other.to_string(), cache_ip.clone());
    let m = map(&c, &ctx);
    assert_eq!(names(&m), ["redis-metrics"]);
    assert_eq!(
        (m.services[0].ip.as_str(), m.services[0].port),
        ("172.17.0.2", 9121)
    );
    assert_eq!(
        m.notes,
        [Note::NetworkContainerIp {
            container: other.into(),
            ip: cache_ip
        }]
    );

    let m = map(&c, &MappingContext::default());
    assert_eq!(m.services[0].ip, "");
    assert_eq!(
        m.notes[0].to_string(),
        "unable to inspect network container: b0c7d0903d23"
    );
}

/// Several networks: the one named by NetworkMode, else the first by name.
#[test]
fn several_networks_pick_deterministically() {
    let mut c = fixture!("multi_network");
    assert_eq!(container_ip(&c).as_deref(), Some("172.18.0.3"));
    let internal = MappingContext {
        internal: true,
        ..ctx()
    };
    let m = map(&c, &internal);
    // 6379 is exposed only: eligible with -internal, so this is a group.
    let got: Vec<_> = m
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.ip.as_str(), s.port))
        .collect();
    assert_eq!(
        got,
        [
            ("redis-6379", "172.18.0.3", 6379),
            ("redis-7000", "172.18.0.3", 7000)
        ]
    );

    c.host_config.as_mut().unwrap().network_mode = Some("bridge".into());
    let networks = c
        .network_settings
        .as_mut()
        .unwrap()
        .networks
        .as_mut()
        .unwrap();
    networks.get_mut("appnet").unwrap().ip_address = Some(String::new());
    assert_eq!(container_ip(&c).as_deref(), Some("172.19.0.2"));
}

/// IPv6 bindings: `::` is "all interfaces" like 0.0.0.0; `::1` is kept and bracketed.
#[test]
fn ipv6_bindings() {
    let m = map(&fixture!("ipv6_bindings"), &ctx());
    let (http, https) = (&m.services[0], &m.services[1]);
    assert_eq!((http.ip.as_str(), http.port), (HOST_IP, 8090));
    assert_eq!((https.ip.as_str(), https.port), ("::1", 8091));
    assert_eq!(https.host_port(), "[::1]:8091");
    let unresolved = MappingContext {
        resolved_host_ip: None,
        ..ctx()
    };
    assert_eq!(
        map(&fixture!("ipv6_bindings"), &unresolved).services[0].ip,
        "::"
    );
}

/// Dual-stack publication: the IPv4 binding is used whatever the order.
#[test]
fn dual_stack_prefers_ipv4_binding() {
    let mut c = fixture!("bridge_unpublished");
    set_bindings(&mut c, "80/tcp", &[("::1", "8081"), ("127.0.0.1", "8081")]);
    assert_eq!(map(&c, &ctx()).services[0].ip, "127.0.0.1");
    set_bindings(&mut c, "80/tcp", &[("::1", "8081")]);
    assert_eq!(map(&c, &ctx()).services[0].ip, "::1");
}

/// IPv6 network: the IPv4 address first; an IPv6-only network gives its v6 address.
#[test]
fn ipv6_network_container_ip() {
    let mut c = fixture!("ipv6_network");
    assert_eq!(container_ip(&c).as_deref(), Some("172.20.0.2"));
    let networks = c
        .network_settings
        .as_mut()
        .unwrap()
        .networks
        .as_mut()
        .unwrap();
    networks.get_mut("v6net").unwrap().ip_address = Some(String::new());
    assert_eq!(container_ip(&c).as_deref(), Some("fd00:dead:beef::2"));
    let internal = MappingContext {
        internal: true,
        ..ctx()
    };
    let m = map(&c, &internal);
    assert_eq!(m.services[0].host_port(), "[fd00:dead:beef::2]:80");
    // Without -internal the user-network rule uses the same address.
    assert_eq!(map(&c, &ctx()).services[0].ip, "fd00:dead:beef::2");
}

/// Port-scoped keys beat global ones in either order and only apply to their port.
#[test]
fn port_scoped_keys_beat_global() {
    for env in [
        ["SERVICE_80_NAME=front", "SERVICE_NAME=generic"],
        ["SERVICE_NAME=generic", "SERVICE_80_NAME=front"],
    ] {
        let c = with_env(fixture!("bridge_two_ports_metadata"), &env);
        let c = with_labels(c, &[]);
        let m = map(&c, &ctx());
        assert_eq!(names(&m), ["front", "generic-443"], "{env:?}");
    }
    let c = with_env(
        fixture!("bridge_two_ports_metadata"),
        &["SERVICE_9999_NAME=other", "SERVICE_443_REGION=eu"],
    );
    let m = map(&with_labels(c, &[]), &ctx());
    assert_eq!(names(&m), ["webapp-80", "webapp-443"]);
    assert!(m.services[0].attrs.is_empty());
    assert_eq!(m.services[1].attrs["region"], "eu");
}

/// Labels are read after env, so a label beats the same env key; keys are lower-cased.
#[test]
fn labels_override_env() {
    let c = with_env(
        fixture!("bridge_one_port"),
        &["SERVICE_NAME=from-env", "SERVICE_Owner=env", "OTHER=x"],
    );
    let c = with_labels(
        c,
        &[("SERVICE_NAME", "from-label"), ("SERVICE_OWNER", "label")],
    );
    let s = &map(&c, &ctx()).services[0];
    assert_eq!(s.name, "from-label");
    assert_eq!(s.attrs.len(), 1);
    assert_eq!(s.attrs["owner"], "label");
}

/// An empty value counts as unset for name/id/ignore, but stays as an attribute.
#[test]
fn empty_values_are_unset() {
    let c = with_env(
        fixture!("bridge_one_port"),
        &[
            "SERVICE_NAME=",
            "SERVICE_ID=",
            "SERVICE_IGNORE=",
            "SERVICE_REGION=",
        ],
    );
    let s = &map(&c, &ctx()).services[0];
    assert_eq!(
        (s.name.as_str(), s.id.as_str()),
        ("redis", "docker-host-1:cache:6379")
    );
    assert_eq!(s.attrs.get("region").map(String::as_str), Some(""));
    assert_eq!(s.attrs.get("ignore").map(String::as_str), Some(""));
}

/// `SERVICE_IGNORE` with any value (even `false`) skips every port.
#[test]
fn ignore_global() {
    let c = with_env(
        fixture!("bridge_two_ports_metadata"),
        &["SERVICE_IGNORE=false"],
    );
    let m = map(&c, &ctx());
    assert!(m.services.is_empty());
    assert_eq!(
        skipped(&m),
        [
            (Some("80/tcp"), SkipReason::Ignored),
            (Some("443/tcp"), SkipReason::Ignored)
        ]
    );
}

/// Ignoring one port of two keeps the group suffix on the other (upstream).
#[test]
fn ignore_one_port_keeps_group_suffix() {
    let c = with_env(
        fixture!("bridge_two_ports_metadata"),
        &["SERVICE_443_IGNORE=1"],
    );
    let m = map(&with_labels(c, &[]), &ctx());
    assert_eq!(names(&m), ["webapp-80"]);
    assert_eq!(skipped(&m), [(Some("443/tcp"), SkipReason::Ignored)]);
}

/// `-explicit`: a port needs a name from env or label, global or port-scoped.
#[test]
fn explicit_needs_a_name() {
    let ctx = MappingContext {
        explicit: true,
        ..ctx()
    };
    let m = map(&fixture!("bridge_one_port"), &ctx);
    assert!(m.services.is_empty());
    assert_eq!(
        skipped(&m),
        [(Some("6379/tcp"), SkipReason::NoExplicitName)]
    );

    let c = with_env(
        fixture!("bridge_two_ports_metadata"),
        &["SERVICE_80_NAME=front"],
    );
    let m = map(&with_labels(c, &[]), &ctx);
    assert_eq!(names(&m), ["front"]);
    assert_eq!(skipped(&m), [(Some("443/tcp"), SkipReason::NoExplicitName)]);

    let c = with_labels(fixture!("bridge_one_port"), &[("SERVICE_NAME", "cache")]);
    assert_eq!(names(&map(&c, &ctx)), ["cache"]);
}

/// `SERVICE_ID` replaces the whole ID; `:udp` is not re-added. An empty port-scoped
/// key still masks the global one (upstream), so the default ID comes back.
#[test]
fn service_id_override() {
    let c = with_env(fixture!("bridge_udp"), &["SERVICE_ID=dns-main"]);
    let m = map(&c, &ctx());
    assert!(m.services.iter().all(|s| s.id == "dns-main"));
    assert!(m.services.iter().all(|s| !s.attrs.contains_key("id")));
    let c = with_env(
        fixture!("bridge_udp"),
        &["SERVICE_ID=dns-main", "SERVICE_53_ID="],
    );
    let ids: Vec<_> = map(&c, &ctx()).services.into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["docker-host-1:dns:53", "docker-host-1:dns:53:udp"]);
}

/// Tags: SERVICE_TAGS, then -tags, then `udp`; `\,` escapes, empty tags dropped.
#[test]
fn tags_order_and_escaping() {
    let c = with_env(fixture!("bridge_udp"), &["SERVICE_TAGS=b,a,,c\\,d, e"]);
    let ctx = MappingContext {
        tags: TagsTemplate::parse("x\\,y,z").unwrap(),
        ..ctx()
    };
    let m = map(&c, &ctx);
    assert_eq!(m.services[0].tags, ["b", "a", "c,d", " e", "x,y", "z"]);
    assert_eq!(
        m.services[1].tags,
        ["b", "a", "c,d", " e", "x,y", "z", "udp"]
    );
    assert!(!m.services[0].attrs.contains_key("tags"));
}

/// `-tags` as a template against the inspect object, Go field names (`.ID` alias).
#[test]
fn tags_template() {
    let template = concat!(
        "{{.Config.Hostname}},{{strSlice .ID 0 6}},",
        r#"{{mIndex "com.example.team" .Config.Labels}},"#,
        r#"{{splitIndex -1 "/" .Config.Image | toUpper}},{{.NetworkSettings.IPAddress}}"#
    );
    let ctx = MappingContext {
        tags: TagsTemplate::parse(template).unwrap(),
        ..ctx()
    };
    let m = map(&fixture!("bridge_two_ports_metadata"), &ctx);
    assert_eq!(
        m.services[0].tags,
        [
            "prod",
            "v1,beta",
            "c3802cbce76a",
            "c3802c",
            "payments",
            "WEBAPP:1.4.2",
            "172.17.0.3"
        ]
    );
}

/// A template that fails to execute is an error for the caller (upstream: fatal).
#[test]
fn tags_template_error() {
    let ctx = MappingContext {
        tags: TagsTemplate::parse(r#"{{sIndex 0 .Config.Cmd}}{{httpGet "http://x"}}"#).unwrap(),
        ..ctx()
    };
    let err = services(&fixture!("bridge_one_port"), &ctx).unwrap_err();
    assert!(
        err.to_string().contains("template execution failed"),
        "{err}"
    );
    // Not executed when no port is registered.
    let m = services(
        &fixture!("bridge_unpublished"),
        &MappingContext {
            explicit: true,
            ..ctx
        },
    );
    assert!(m.is_ok());
}

/// `-useIpFromLabel`: the label's value minus `/prefix`; absent label noted.
#[test]
fn ip_from_label() {
    let ctx = MappingContext {
        use_ip_from_label: Some("com.example.ip".into()),
        ..ctx()
    };
    let c = with_labels(
        fixture!("bridge_one_port"),
        &[("com.example.ip", "10.1.2.3/24")],
    );
    let m = map(&c, &ctx);
    assert_eq!(m.services[0].ip, "10.1.2.3");
    assert_eq!(
        m.notes[0].to_string(),
        "using container IP 10.1.2.3 from label 'com.example.ip'"
    );
    let m = map(&fixture!("bridge_one_port"), &ctx);
    assert_eq!(m.services[0].ip, HOST_IP);
    assert_eq!(
        m.notes,
        [Note::LabelMissing {
            label: "com.example.ip".into()
        }]
    );
}

/// No exposed or published port at all.
#[test]
fn no_ports() {
    let mut c = fixture!("container_mode");
    c.config.as_mut().unwrap().exposed_ports = None;
    let m = map(&c, &ctx());
    assert!(m.services.is_empty());
    assert_eq!(skipped(&m), [(None, SkipReason::NoPorts)]);
    assert_eq!(m.skipped[0].to_string(), "no published ports");
}

/// Docker HEALTHCHECK states; `["NONE"]` and no healthcheck mean none.
#[test]
fn docker_health_states() {
    let cases = [
        (fixture!("health_healthy"), Some(DockerHealth::Healthy)),
        (fixture!("health_unhealthy"), Some(DockerHealth::Unhealthy)),
        (fixture!("health_starting"), Some(DockerHealth::Starting)),
        (fixture!("health_disabled"), None),
        (fixture!("bridge_one_port"), None),
    ];
    for (c, want) in cases {
        assert_eq!(docker_health(&c), want, "{:?}", c.name);
        assert_eq!(map(&c, &ctx()).services[0].health, want, "{:?}", c.name);
    }
    // Created but never started: no Health yet.
    let mut c = fixture!("health_healthy");
    c.state.as_mut().unwrap().health = None;
    assert_eq!(docker_health(&c), Some(DockerHealth::Starting));
}

#[test]
fn default_names() {
    let cases = [
        ("gliderlabs/foobar:1.0", "foobar"),
        ("registry:5000/x/app:tag", "app"),
        ("repo/redis@sha256:abcd", "redis@sha256"),
        ("redis", "redis"),
        ("redis/", "redis"),
        ("", "."),
    ];
    for (image, name) in cases {
        assert_eq!(default_name(image), name, "{image}");
    }
}

#[test]
fn context_from_config() {
    let argv = [
        "registrator",
        "-ip=10.0.0.5",
        "-internal",
        "-explicit",
        "-tags=a",
        "-useIpFromLabel=l",
        "-ttl=30",
        "-ttl-refresh=10",
        "etcd://",
    ];
    let config = crate::cli::parse(argv.iter().map(Into::into).collect()).unwrap();
    let ctx = MappingContext::new(&config, HOST.into(), Some(HOST_IP.into()));
    assert_eq!(ctx.forced_ip.as_deref(), Some("10.0.0.5"));
    assert!(ctx.internal && ctx.explicit);
    assert_eq!(ctx.tags.source(), "a");
    assert_eq!(ctx.use_ip_from_label.as_deref(), Some("l"));
    assert_eq!(ctx.ttl, 30);
    assert_eq!(
        (ctx.hostname.as_str(), ctx.resolved_host_ip.as_deref()),
        (HOST, Some(HOST_IP))
    );
}
