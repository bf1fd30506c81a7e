//! `consulkv://` against a registry-node agent: one KV key per service.

use registrator::backend;

use super::*;

/// What this test does:
/// - pings (`consulkv: current leader ...`);
/// - registers an IPv4 and an IPv6 service under `/services` and reads the raw
///   values `ip:port` and `[ip]:port` at `services/<Name>/<ID>`;
/// - `services()` lists nothing and `refresh` succeeds (no TTL), as upstream;
/// - deregister deletes the key.
#[tokio::test]
async fn keys_values_and_delete() {
    let agent = TestAgent::start().await;
    let kv = backend::from_uri(&format!("consulkv://{}/services", agent.handle.http_addr)).unwrap();
    let text = kv.ping().await.unwrap();
    assert!(
        text.starts_with("consulkv: current leader 127.0.0.1:"),
        "{text}"
    );

    // --- step: register v4 and v6
    let v4 = service("host1:web.1:80", "web", "10.0.0.5", 32768);
    let v6 = service("host1:web.2:80", "web", "fd00::5", 32769);
    kv.register(&v4).await.unwrap();
    kv.register(&v6).await.unwrap();
    assert_eq!(
        get_text(&agent, "/v1/kv/services/web/host1:web.1:80?raw").await,
        (200, "10.0.0.5:32768".to_string())
    );
    assert_eq!(
        get_text(&agent, "/v1/kv/services/web/host1:web.2:80?raw").await,
        (200, "[fd00::5]:32769".to_string())
    );

    // --- step: no listing, refresh is a no-op
    assert!(kv.services().await.unwrap().is_empty());
    kv.refresh(&v4).await.unwrap();

    // --- step: deregister
    kv.deregister(&v4).await.unwrap();
    assert_eq!(
        get_text(&agent, "/v1/kv/services/web/host1:web.1:80?raw")
            .await
            .0,
        404
    );
    assert_eq!(
        get_text(&agent, "/v1/kv/services/web/host1:web.2:80?raw")
            .await
            .0,
        200
    );
    agent.shutdown().await;
}

/// What this test does: `consulkv://host` without a path (upstream crashes on the
/// first registration) writes `<Name>/<ID>` at the KV root.
#[tokio::test]
async fn no_prefix_writes_at_the_root() {
    let agent = TestAgent::start().await;
    let kv = backend::from_uri(&format!("consulkv://{}", agent.handle.http_addr)).unwrap();
    let db = service("host1:db:5432", "db", "10.0.0.7", 5432);
    kv.register(&db).await.unwrap();
    assert_eq!(
        get_text(&agent, "/v1/kv/db/host1:db:5432?raw").await,
        (200, "10.0.0.7:5432".to_string())
    );
    kv.deregister(&db).await.unwrap();
    assert_eq!(get_text(&agent, "/v1/kv/db/host1:db:5432?raw").await.0, 404);
    agent.shutdown().await;
}
