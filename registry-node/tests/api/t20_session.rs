//! Sessions: create/info/list/node/renew/destroy, validation, TTL expiry
//! decided by the leader, `delete` behaviour, lock-delay on re-acquire.

use std::time::Duration;

use super::*;
use registry_node::agent::AgentOptions;
use registry_node::testing::wait_for;
use serde_json::json;

async fn create(a: &TestAgent, body: Value) -> String {
    let (status, text) = put(a, "/v1/session/create", body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn lifecycle_and_views() {
    let a = TestAgent::start().await;
    let node = a.handle.agent.opts.node_name.clone();
    let id = create(
        &a,
        json!({"Name": "s1", "TTL": "30s", "Behavior": "delete", "LockDelay": "5s"}),
    )
    .await;
    let (info, _) = get_json(&a, &format!("/v1/session/info/{id}")).await;
    let s = &info[0];
    assert_eq!(s["Name"], "s1");
    assert_eq!(s["Node"], node.as_str());
    assert_eq!(s["TTL"], "30s");
    assert_eq!(s["Behavior"], "delete");
    assert_eq!(
        s["LockDelay"], 5_000_000_000u64,
        "LockDelay is nanoseconds on the wire"
    );
    assert_eq!(s["NodeChecks"], json!(["serfHealth"]));
    let (list, _) = get_json(&a, "/v1/session/list").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (on_node, _) = get_json(&a, &format!("/v1/session/node/{node}")).await;
    assert_eq!(on_node.as_array().unwrap().len(), 1);
    let (renewed, _) = get_json(&a, "/v1/session/info/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(renewed, json!([]));
    let (status, body) = put(&a, &format!("/v1/session/renew/{id}"), "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = put(
        &a,
        "/v1/session/renew/00000000-0000-0000-0000-000000000000",
        "",
    )
    .await;
    assert_eq!(status, 404);

    // --- step: delete behaviour removes the held key on destroy
    assert_eq!(
        put(&a, &format!("/v1/kv/eph?acquire={id}"), "x").await.1,
        "true"
    );
    assert_eq!(
        put(&a, &format!("/v1/session/destroy/{id}"), "").await,
        (200, "true".into())
    );
    assert_eq!(get(&a, "/v1/kv/eph").await.0, 404);
    assert_eq!(
        put(&a, &format!("/v1/session/destroy/{id}"), "").await.1,
        "true",
        "idempotent"
    );
    assert_eq!(put(&a, "/v1/session/destroy/not-a-uuid", "").await.0, 400);

    // --- step: validation
    assert_eq!(
        put(
            &a,
            "/v1/session/create",
            json!({"Behavior": "explode"}).to_string()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        put(&a, "/v1/session/create", json!({"TTL": "100h"}).to_string())
            .await
            .0,
        400
    );
    assert_eq!(
        put(
            &a,
            "/v1/session/create",
            json!({"Node": "ghost"}).to_string()
        )
        .await
        .0,
        500
    );
    assert_eq!(
        put(
            &a,
            "/v1/session/create",
            json!({"NodeChecks": ["missing"]}).to_string()
        )
        .await
        .0,
        500
    );
    a.shutdown().await;
}

#[tokio::test]
async fn ttl_expiry_releases_lock_and_lock_delay_holds() {
    let mut opts = AgentOptions::for_test();
    opts.session_ttl_min = Duration::from_millis(100);
    let a = TestAgent::start_with(opts).await;
    // --- step: a session with a 200ms TTL holding a lock, never renewed
    let id = create(&a, json!({"TTL": "200ms", "LockDelay": "1s"})).await;
    assert_eq!(
        put(&a, &format!("/v1/kv/leader?acquire={id}"), "me")
            .await
            .1,
        "true"
    );
    let agent = a.handle.agent.clone();
    wait_for(Duration::from_secs(5), "session expiry", || {
        agent
            .server_raft()
            .expect("server")
            .shared
            .read(|s| s.session(&id).is_none())
    })
    .await;
    let (v, _) = get_json(&a, "/v1/kv/leader").await;
    assert!(v[0].get("Session").is_none(), "lock released: {v}");

    // --- step: lock-delay refuses a new holder for a while, then allows it
    let other = create(&a, json!({"LockDelay": "0s"})).await;
    assert_eq!(
        put(&a, &format!("/v1/kv/leader?acquire={other}"), "you")
            .await
            .1,
        "false"
    );
    let http = a.http.clone();
    let url = a.url(&format!("/v1/kv/leader?acquire={other}"));
    let mut acquired = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if http
            .put(&url)
            .body("you")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "true"
        {
            acquired = true;
            break;
        }
    }
    assert!(acquired, "lock acquired after the lock-delay");
    a.shutdown().await;
}
