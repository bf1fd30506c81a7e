//! `consul://` against a registry-node agent: the registration payload lands in
//! the agent and the catalog, `services()` reads it back, deregistration removes
//! it, the Docker health check follows `set_docker_health`, and failures come out
//! as `Refused` (an answer) or `Unreachable` (no answer).

use registrator::backend::{self, BackendError, DockerHealth};

use super::*;

/// What this test does:
/// - pings the agent (`consul: current leader ...`);
/// - registers a service with tags and attributes, and finds ID, Name, Address,
///   Port, Tags and Meta in `/v1/agent/services` and `/v1/catalog/service/<name>`;
/// - reads it back through `services()`;
/// - deregisters it and sees it gone from both.
#[tokio::test]
async fn register_list_deregister() {
    let agent = TestAgent::start().await;
    let consul = backend::from_uri(&format!("consul://{}", agent.handle.http_addr)).unwrap();

    // --- step: ping
    let text = consul.ping().await.unwrap();
    assert!(
        text.starts_with("consul: current leader 127.0.0.1:"),
        "{text}"
    );

    // --- step: register
    let mut web = service("host1:web.1:80", "web-80", "10.0.0.5", 32768);
    web.tags = vec!["a".into(), "b".into()];
    web.attrs.insert("region".into(), "eu".into());
    consul.register(&web).await.unwrap();

    let (status, services) = get_json(&agent, "/v1/agent/services").await;
    assert_eq!(status, 200);
    let s = &services["host1:web.1:80"];
    assert_eq!(s["ID"], "host1:web.1:80", "{services}");
    assert_eq!(s["Service"], "web-80");
    assert_eq!(s["Address"], "10.0.0.5");
    assert_eq!(s["Port"], 32768);
    assert_eq!(s["Tags"], serde_json::json!(["a", "b"]));
    assert_eq!(s["Meta"]["region"], "eu");

    let row = eventually("the service in the catalog", || async {
        let (_, rows) = get_json(&agent, "/v1/catalog/service/web-80").await;
        rows.as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert_eq!(row["ServiceID"], "host1:web.1:80");
    assert_eq!(row["ServiceAddress"], "10.0.0.5");
    assert_eq!(row["ServicePort"], 32768);
    assert_eq!(row["ServiceTags"], serde_json::json!(["a", "b"]));
    assert_eq!(row["ServiceMeta"]["region"], "eu");

    // --- step: services() round-trips
    let listed = consul.services().await.unwrap();
    let back = listed
        .iter()
        .find(|s| s.id == "host1:web.1:80")
        .unwrap_or_else(|| panic!("not listed: {listed:?}"));
    assert_eq!(back.name, "web-80");
    assert_eq!(back.ip, "10.0.0.5");
    assert_eq!(back.port, 32768);
    assert_eq!(back.tags, vec!["a", "b"]);
    assert_eq!(back.attrs.get("region").map(String::as_str), Some("eu"));

    // --- step: refresh is a no-op that succeeds
    consul.refresh(&web).await.unwrap();

    // --- step: deregister
    consul.deregister(&web).await.unwrap();
    let (_, services) = get_json(&agent, "/v1/agent/services").await;
    assert!(services.get("host1:web.1:80").is_none(), "{services}");
    eventually("the service gone from the catalog", || async {
        let (_, rows) = get_json(&agent, "/v1/catalog/service/web-80").await;
        rows.as_array().is_some_and(|r| r.is_empty()).then_some(())
    })
    .await;
    assert!(
        !consul
            .services()
            .await
            .unwrap()
            .iter()
            .any(|s| s.id == "host1:web.1:80")
    );
    agent.shutdown().await;
}

/// What this test does:
/// - registers a service whose container has a Docker healthcheck (the payload
///   then carries the `<id>:docker-health` TTL check);
/// - flips it with `set_docker_health` and reads the check's status on the agent.
#[tokio::test]
async fn docker_health_drives_the_ttl_check() {
    let agent = TestAgent::start().await;
    let consul = backend::from_uri(&format!("consul://{}", agent.handle.http_addr)).unwrap();
    let mut web = service("host1:web.1:80", "web", "10.0.0.5", 8080);
    web.health = Some(DockerHealth::Starting);
    consul.register(&web).await.unwrap();

    let check_status = || async {
        let (_, checks) = get_json(&agent, "/v1/agent/checks").await;
        let check = &checks["host1:web.1:80:docker-health"];
        (
            check["Status"].as_str().unwrap_or("absent").to_string(),
            check["Output"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(check_status().await.0, "critical");

    // --- step: healthy passes, unhealthy is critical
    consul
        .set_docker_health(&web, DockerHealth::Healthy)
        .await
        .unwrap();
    assert_eq!(
        check_status().await,
        ("passing".to_string(), "docker health: healthy".to_string())
    );
    consul
        .set_docker_health(&web, DockerHealth::Unhealthy)
        .await
        .unwrap();
    assert_eq!(check_status().await.0, "critical");

    // --- step: a service without that check is refused (404), not retryable
    let other = service("host1:other:80", "other", "10.0.0.6", 80);
    let err = consul
        .set_docker_health(&other, DockerHealth::Healthy)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Refused { .. }), "{err:?}");
    assert!(!err.is_retryable(), "{err}");
    agent.shutdown().await;
}

/// What this test does:
/// - a registration the agent rejects (no name) is `Refused` with the agent's
///   status and message, and is not retryable;
/// - a closed port is `Unreachable`, retryable, and the message says what to do.
#[tokio::test]
async fn refused_and_unreachable_are_told_apart() {
    let agent = TestAgent::start().await;
    let consul = backend::from_uri(&format!("consul://{}", agent.handle.http_addr)).unwrap();

    // --- step: refused
    let nameless = service("x", "", "10.0.0.1", 80);
    let err = consul.register(&nameless).await.unwrap_err();
    assert!(matches!(err, BackendError::Refused { .. }), "{err:?}");
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(!err.is_retryable() && !err.is_unreachable());
    assert!(
        err.to_string().starts_with(&format!(
            "consul at {} refused PUT /v1/agent/service/register: 400 ",
            agent.handle.http_addr
        )),
        "{err}"
    );
    agent.shutdown().await;

    // --- step: unreachable
    let port = closed_port();
    let consul = backend::from_uri(&format!("consul://127.0.0.1:{port}")).unwrap();
    let err = consul.ping().await.unwrap_err();
    assert!(err.is_unreachable() && err.is_retryable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "consul at 127.0.0.1:{port} is unreachable (connection refused); is the agent \
             running? (set the address in the registry URI or CONSUL_HTTP_ADDR)"
        )
    );
    let err = consul
        .register(&service("a", "b", "10.0.0.1", 1))
        .await
        .unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
}

/// What this test does:
/// - `consul://` without a host takes `CONSUL_HTTP_ADDR` (here with an `http://`
///   prefix) and sends `CONSUL_HTTP_TOKEN` (registry-node runs without ACLs, so
///   the token is only carried, not checked);
/// - unknown schemes and malformed URIs fail with upstream's wording.
#[tokio::test]
async fn address_from_environment_and_uri_errors() {
    let agent = TestAgent::start().await;
    let env = env_of(&[
        (
            "CONSUL_HTTP_ADDR",
            &format!("http://{}", agent.handle.http_addr),
        ),
        ("CONSUL_HTTP_TOKEN", "secret"),
    ]);
    let consul = backend::from_uri_with_env("consul://", &env).unwrap();
    consul.ping().await.unwrap();
    let web = service("h:web:80", "web", "10.0.0.1", 80);
    consul.register(&web).await.unwrap();
    let (_, services) = get_json(&agent, "/v1/agent/services").await;
    assert_eq!(services["h:web:80"]["Service"], "web");
    agent.shutdown().await;

    // --- step: URI errors
    let err = |uri: &str| backend::from_uri(uri).unwrap_err().to_string();
    assert_eq!(
        err("zookeeper://h:2181/x"),
        "unrecognized adapter: zookeeper://h:2181/x"
    );
    assert_eq!(err("nonsense"), "unrecognized adapter: nonsense");
    assert!(err("consul://h:port").starts_with("bad adapter uri: consul://h:port"));
}
