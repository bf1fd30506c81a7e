//! (d) A killed client agent turns `failed`, its serfHealth check critical, and
//! its services drop out of `/v1/health/service/<name>?passing`.

use std::time::Duration;

use crate::{Cluster, Env, WAIT_SHORT, member_status, wait_for};

/// Bound for the servers to detect the dead client (gossip probe + suspicion).
const DETECT: Duration = Duration::from_secs(30);

/// Node names in a `/v1/health/service/...` answer.
fn nodes_of(body: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{body:?}: {e}"))?;
    Ok(v.as_array()
        .ok_or_else(|| format!("not an array: {body}"))?
        .iter()
        .filter_map(|e| e["Node"]["Node"].as_str().map(String::from))
        .collect())
}

#[test]
fn killed_client_fails_and_its_services_stop_passing() {
    let mut env = Env::new("clientfail");
    let cluster = Cluster::start(&mut env, true);
    let client = cluster.client.clone().unwrap();
    cluster.wait_formed(&env);
    let s1 = cluster.servers[0].clone();

    // A service without checks on the client agent: passing while its node is.
    env.http_put(
        &client.ip,
        "/v1/agent/service/register",
        r#"{"ID":"web-1","Name":"web","Port":8080,"Tags":["docker"]}"#,
    )
    .unwrap();
    let path = "/v1/health/service/web?passing";
    wait_for(
        WAIT_SHORT,
        "web is passing on c1 (anti-entropy sync)",
        || match nodes_of(&env.http_get(&s1.ip, path)?)? {
            n if n == ["c1"] => Ok(()),
            n => Err(format!("passing nodes {n:?}")),
        },
    );

    env.kill(&client);
    wait_for(
        DETECT,
        "members on s1 shows c1 failed",
        || match member_status(&env, &s1, "c1")?.as_str() {
            "failed" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    wait_for(WAIT_SHORT, "web is no longer passing", || {
        match nodes_of(&env.http_get(&s1.ip, path)?)? {
            n if n.is_empty() => Ok(()),
            n => Err(format!("passing nodes {n:?}")),
        }
    });
    // The reason: c1's serfHealth is critical; the service stays in the catalog.
    let checks: serde_json::Value =
        serde_json::from_str(&env.http_get(&s1.ip, "/v1/health/node/c1").unwrap()).unwrap();
    let serf = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .unwrap_or_else(|| panic!("no serfHealth check on c1: {checks}"));
    assert_eq!(serf["Status"], "critical", "{serf}");
    let all = nodes_of(&env.http_get(&s1.ip, "/v1/health/service/web").unwrap()).unwrap();
    assert_eq!(all, ["c1"], "still registered, only not passing");
}
