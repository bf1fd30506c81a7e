//! KV endpoint: every read/write/delete form and its errors.
//! - put/get round trip with base64 values, flags and indexes;
//! - recurse, keys, separator, raw; 404 with X-Consul-Index on missing keys;
//! - cas create-only and index match; delete cas/recurse; 413 on oversized values;
//! - acquire/release with a session; bad query values.

use super::*;
use base64::Engine;

#[tokio::test]
async fn put_get_recurse_keys_raw() {
    let a = TestAgent::start().await;
    // --- step: put and get
    assert_eq!(
        put(&a, "/v1/kv/user/config/connections", "5").await,
        (200, "true".into())
    );
    let (v, idx) = get_json(&a, "/v1/kv/user/config/connections").await;
    let e = &v[0];
    assert_eq!(e["Key"], "user/config/connections");
    assert_eq!(
        e["Value"],
        base64::engine::general_purpose::STANDARD.encode("5")
    );
    assert_eq!(e["Flags"], 0);
    assert_eq!(e["LockIndex"], 0);
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
    assert!(e.get("Session").is_none(), "Session omitted when unlocked");
    assert_eq!(idx, e["ModifyIndex"].as_u64().unwrap());
    // Field order as Consul writes it.
    let (_, _, raw_json) = get(&a, "/v1/kv/user/config/connections").await;
    assert!(raw_json.starts_with(r#"[{"LockIndex":0,"Key":"user/config/connections","Flags":0,"Value":"NQ==","CreateIndex":"#), "{raw_json}");

    // --- step: flags and raw
    assert_eq!(
        put(&a, "/v1/kv/user/config/flagged?flags=42", "x").await.0,
        200
    );
    let (v, _) = get_json(&a, "/v1/kv/user/config/flagged").await;
    assert_eq!(v[0]["Flags"], 42);
    let (status, _, body) = get(&a, "/v1/kv/user/config/connections?raw").await;
    assert_eq!((status, body.as_str()), (200, "5"));

    // --- step: recurse, keys, separator
    put(&a, "/v1/kv/user/other/deep/x", "1").await;
    let (v, _) = get_json(&a, "/v1/kv/user/?recurse").await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (v, _) = get_json(&a, "/v1/kv/user/?keys&separator=/").await;
    assert_eq!(v, serde_json::json!(["user/config/", "user/other/"]));
    let (v, _) = get_json(&a, "/v1/kv/?keys").await;
    assert_eq!(v.as_array().unwrap().len(), 3);

    // --- step: missing key is 404 with an index header
    let (status, idx, body) = get(&a, "/v1/kv/nope").await;
    assert_eq!((status, body.as_str()), (404, ""));
    assert!(idx >= 1);
    let (status, _, _) = get(&a, "/v1/kv/nope/?recurse").await;
    assert_eq!(status, 404);

    // --- step: pretty output
    let (_, _, body) = get(&a, "/v1/kv/user/config/connections?pretty").await;
    assert!(
        body.contains("\n    {\n        \"LockIndex\": 0,"),
        "{body}"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn cas_delete_and_limits() {
    let a = TestAgent::start().await;
    assert_eq!(put(&a, "/v1/kv/c?cas=0", "a").await.1, "true");
    assert_eq!(
        put(&a, "/v1/kv/c?cas=0", "b").await.1,
        "false",
        "cas=0 only creates"
    );
    let (v, _) = get_json(&a, "/v1/kv/c").await;
    let mi = v[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        put(&a, &format!("/v1/kv/c?cas={}", mi + 100), "b").await.1,
        "false"
    );
    assert_eq!(put(&a, &format!("/v1/kv/c?cas={mi}"), "b").await.1, "true");

    // --- step: delete with cas
    let (v, _) = get_json(&a, "/v1/kv/c").await;
    let mi = v[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(delete(&a, "/v1/kv/c?cas=1").await.1, "false");
    assert_eq!(delete(&a, &format!("/v1/kv/c?cas={mi}")).await.1, "true");
    assert_eq!(get(&a, "/v1/kv/c").await.0, 404);
    assert_eq!(
        delete(&a, "/v1/kv/never-existed").await,
        (200, "true".into())
    );

    // --- step: delete recurse
    for k in ["t/a", "t/b", "t/c/d", "u"] {
        put(&a, &format!("/v1/kv/{k}"), "1").await;
    }
    assert_eq!(delete(&a, "/v1/kv/t/?recurse").await.1, "true");
    assert_eq!(get(&a, "/v1/kv/t/?recurse").await.0, 404);
    assert_eq!(get(&a, "/v1/kv/u").await.0, 200);
    assert_eq!(delete(&a, "/v1/kv/u?recurse&cas=1").await.0, 400);

    // --- step: 413 on a value over 512 KiB, nothing written
    let big = vec![b'x'; 512 * 1024 + 1];
    let (status, body) = put(&a, "/v1/kv/big", big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too large"), "{body}");
    assert_eq!(get(&a, "/v1/kv/big").await.0, 404);
    assert_eq!(
        put(&a, "/v1/kv/edge", vec![b'y'; 512 * 1024]).await.0,
        200,
        "exactly the limit is fine"
    );

    // --- step: bad parameters
    assert_eq!(put(&a, "/v1/kv/x?flags=abc", "1").await.0, 400);
    assert_eq!(get(&a, "/v1/kv/x?index=abc").await.0, 400);
    assert_eq!(
        get(&a, "/v1/kv/x?wait=10").await.0,
        400,
        "bare integers are not durations"
    );
    assert_eq!(
        get(&a, "/v1/kv/x?dc=elsewhere").await,
        (500, 0, "No path to datacenter".into())
    );
    assert_eq!(get(&a, "/v1/kv/x?stale&consistent").await.0, 400);
    let r = a.http.post(a.url("/v1/kv/x")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    a.shutdown().await;
}

#[tokio::test]
async fn acquire_and_release() {
    let a = TestAgent::start().await;
    let (status, body) = put(
        &a,
        "/v1/session/create",
        r#"{"Name":"locker","LockDelay":"0s"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sid = serde_json::from_str::<Value>(&body).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        put(&a, &format!("/v1/kv/lock?acquire={sid}"), "me").await.1,
        "true"
    );
    let (v, _) = get_json(&a, "/v1/kv/lock").await;
    assert_eq!(v[0]["Session"], sid.as_str());
    assert_eq!(v[0]["LockIndex"], 1);
    // A second session cannot take it.
    let (_, body) = put(&a, "/v1/session/create", "{}").await;
    let other = serde_json::from_str::<Value>(&body).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        put(&a, &format!("/v1/kv/lock?acquire={other}"), "you")
            .await
            .1,
        "false"
    );
    assert_eq!(
        put(&a, &format!("/v1/kv/lock?release={other}"), "").await.1,
        "false"
    );
    assert_eq!(
        put(&a, &format!("/v1/kv/lock?release={sid}"), "free")
            .await
            .1,
        "true"
    );
    let (v, _) = get_json(&a, "/v1/kv/lock").await;
    assert!(v[0].get("Session").is_none());
    assert_eq!(v[0]["LockIndex"], 1);
    // Unknown session: 500 like Consul's RPC error.
    let (status, body) = put(
        &a,
        "/v1/kv/lock?acquire=00000000-0000-0000-0000-000000000000",
        "x",
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("invalid session"), "{body}");
    a.shutdown().await;
}
