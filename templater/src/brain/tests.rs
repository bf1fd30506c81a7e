use super::*;

#[test]
fn decode_health_filters_sorts_and_falls_back() {
    let body = br#"[
      {"Node": {"Node": "n2", "Address": "10.0.0.2"},
       "Service": {"ID": "b", "Service": "web", "Tags": ["z", "a"], "Address": "", "Port": 80},
       "Checks": [{"CheckID": "c", "Status": "passing"}]},
      {"Node": {"Node": "n1", "Address": "10.0.0.1"},
       "Service": {"ID": "a", "Service": "web", "Address": "192.168.0.1", "Port": 81},
       "Checks": []},
      {"Node": {"Node": "n0", "Address": "10.0.0.9"},
       "Service": {"ID": "m", "Service": "web", "Port": 82},
       "Checks": [{"CheckID": "_node_maintenance", "Status": "critical"}]}
    ]"#;
    let dep = Dependency::health_service("web", false).unwrap();
    let Data::HealthServices(list) = decode(&dep, body).unwrap() else {
        panic!()
    };
    let ids: Vec<_> = list
        .iter()
        .map(|s| (s.node.as_str(), s.address.as_str()))
        .collect();
    assert_eq!(ids, [("n1", "192.168.0.1"), ("n2", "10.0.0.2")]);
    assert_eq!(list[1].tags, ["a", "z"]);
    let dep = Dependency::health_service("web|maintenance", false).unwrap();
    let Data::HealthServices(list) = decode(&dep, body).unwrap() else {
        panic!()
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, "maintenance");
}

#[test]
fn decode_kv() {
    let dep = Dependency::key("a/b").unwrap();
    assert_eq!(decode(&dep, b"").unwrap(), Data::Key(None));
    let body = br#"[{"Key": "a/b", "Value": "aGk=", "Flags": 0, "CreateIndex": 1, "ModifyIndex": 2, "LockIndex": 0}]"#;
    assert_eq!(decode(&dep, body).unwrap(), Data::Key(Some("hi".into())));
    let dep = Dependency::key_prefix("a").unwrap();
    let Data::KeyPrefix(pairs) = decode(&dep, body).unwrap() else {
        panic!()
    };
    assert_eq!(
        (pairs[0].key.as_str(), pairs[0].path.as_str()),
        ("b", "a/b")
    );
    assert_eq!(decode(&dep, b"").unwrap(), Data::KeyPrefix(vec![]));
}

#[test]
fn decode_catalog() {
    let dep = Dependency::catalog_services("").unwrap();
    let Data::Services(s) = decode(&dep, br#"{"web": ["b", "a"], "consul": null}"#).unwrap() else {
        panic!()
    };
    assert_eq!(s[0].name, "consul");
    assert_eq!(s[1].tags, ["a", "b"]);
    let dep = Dependency::catalog_node("n1").unwrap();
    let Data::CatalogNode(n) = decode(&dep, b"null").unwrap() else {
        panic!()
    };
    assert!(n.node.is_none());
    assert!(decode(&dep, b"{bad").is_err());
}

#[test]
fn remember_reports_changes() {
    let mut b = Brain::new();
    let dep = Dependency::key("k").unwrap();
    assert!(b.remember(dep.clone(), Data::Key(None)));
    assert!(!b.remember(dep.clone(), Data::Key(None)));
    assert!(b.remember(dep.clone(), Data::Key(Some("v".into()))));
    b.forget(&dep);
    assert!(b.recall(&dep).is_none());
}
