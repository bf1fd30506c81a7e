//! Transactions: commit, rollback with 409 and `Errors`, limits, bad input.

use super::*;
use serde_json::json;

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn commit_and_rollback() {
    let a = TestAgent::start().await;
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "t/a", "Value": b64("1")}},
        {"KV": {"Verb": "set", "Key": "t/b", "Value": b64("2"), "Flags": 7}},
        {"KV": {"Verb": "get", "Key": "t/a"}},
        {"KV": {"Verb": "get-tree", "Key": "t/"}}
    ]);
    let (status, body) = put(&a, "/v1/txn", ops.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Errors"], Value::Null);
    let results = v["Results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["KV"]["Value"], Value::Null);
    assert_eq!(results[2]["KV"]["Value"], b64("1"));
    let idx = results[0]["KV"]["ModifyIndex"].as_u64().unwrap();

    // --- step: a failing check rolls everything back with 409
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "t/c", "Value": b64("3")}},
        {"KV": {"Verb": "delete", "Key": "t/a"}},
        {"KV": {"Verb": "check-index", "Key": "t/b", "Index": idx + 999}},
        {"KV": {"Verb": "check-not-exists", "Key": "t/b"}}
    ]);
    let (status, body) = put(&a, "/v1/txn", ops.to_string()).await;
    assert_eq!(status, 409, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Results"], Value::Null);
    let errors = v["Errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["OpIndex"], 2);
    assert_eq!(get(&a, "/v1/kv/t/c").await.0, 404, "rolled back");
    assert_eq!(get(&a, "/v1/kv/t/a").await.0, 200, "rolled back");

    // --- step: cas, delete-cas, lock verbs
    let ops = json!([{"KV": {"Verb": "cas", "Key": "t/a", "Value": b64("9"), "Index": idx}}, {"KV": {"Verb": "delete-cas", "Key": "t/b", "Index": idx}}]);
    assert_eq!(put(&a, "/v1/txn", ops.to_string()).await.0, 200);
    assert_eq!(get(&a, "/v1/kv/t/b").await.0, 404);

    // --- step: limits and bad input
    let many: Vec<Value> = (0..129)
        .map(|i| json!({"KV": {"Verb": "get", "Key": format!("k{i}")}}))
        .collect();
    assert_eq!(
        put(&a, "/v1/txn", Value::Array(many).to_string()).await.0,
        413
    );
    assert_eq!(put(&a, "/v1/txn", "[{").await.0, 400);
    assert_eq!(
        put(
            &a,
            "/v1/txn",
            json!([{"Node": {"Verb": "get"}}]).to_string()
        )
        .await
        .0,
        400
    );
    let (status, body) = put(
        &a,
        "/v1/txn",
        json!([{"KV": {"Verb": "bogus", "Key": "x"}}]).to_string(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    a.shutdown().await;
}
