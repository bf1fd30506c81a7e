use super::*;

fn health(s: &str) -> Dependency {
    Dependency::health_service(s, false).unwrap()
}

#[test]
fn service_query_grammar() {
    let d = health("web");
    assert_eq!(
        d,
        Dependency::HealthService {
            name: "web".into(),
            tag: None,
            near: None,
            filters: vec!["passing".into()],
            connect: false,
            scope: Scope::default(),
        }
    );
    let Dependency::HealthService {
        name,
        tag,
        near,
        filters,
        scope,
        ..
    } = health("v1.2.web@dc2~_agent|warning,any")
    else {
        panic!()
    };
    // The tag is greedy up to the last dot: service names cannot contain dots.
    assert_eq!(
        (
            name.as_str(),
            tag.as_deref(),
            near.as_deref(),
            scope.dc.as_deref()
        ),
        ("web", Some("v1.2"), Some("_agent"), Some("dc2"))
    );
    assert_eq!(filters, vec!["any", "warning"]);
    // `service "web" "any"` joins with `|`; `web` and `web|passing` are the same.
    assert_eq!(health("web|passing"), health("web"));
    let Dependency::HealthService { scope, .. } = health("web?ns=team&partition=p1@dc1") else {
        panic!()
    };
    assert_eq!(scope.namespace.as_deref(), Some("team"));
    assert_eq!(scope.partition.as_deref(), Some("p1"));
}

#[test]
fn service_query_errors() {
    let err = |s: &str| {
        Dependency::health_service(s, false)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("web app"),
        r#"health.service: invalid format: "web app""#
    );
    assert_eq!(
        err("web|bogus"),
        r#"health.service: invalid filter: "bogus" in "web|bogus""#
    );
    assert!(err("web?foo=bar").contains(r#"invalid query parameter key "foo""#));
    assert!(err("web?peer=a&sameness-group=b").contains("cannot specify both"));
    assert!(Dependency::catalog_nodes("nope").is_err());
}

#[test]
fn kv_and_catalog_queries() {
    assert_eq!(
        Dependency::key("/config/a@dc2").unwrap(),
        Dependency::Key {
            path: "config/a".into(),
            scope: Scope {
                dc: Some("dc2".into()),
                ..Scope::default()
            }
        }
    );
    let Dependency::KeyPrefix { prefix, .. } = Dependency::key_prefix("config/").unwrap() else {
        panic!()
    };
    assert_eq!(prefix, "config/");
    assert_eq!(
        Dependency::catalog_node("").unwrap(),
        Dependency::CatalogNode {
            name: None,
            scope: Scope::default()
        }
    );
    let Dependency::CatalogNodes { near, scope } = Dependency::catalog_nodes("@dc1~n1").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (near.as_deref(), scope.dc.as_deref()),
        (Some("n1"), Some("dc1"))
    );
}

#[test]
fn sources() {
    let Source::Consul {
        path,
        params,
        blocking,
    } = health("tag1.web@dc1").source()
    else {
        panic!()
    };
    assert_eq!(path, "/v1/health/service/web");
    assert!(blocking);
    let p: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(p, [("dc", "dc1"), ("tag", "tag1"), ("passing", "1")]);
    // Any filter set other than exactly `passing` filters client-side.
    let Source::Consul { params, .. } = health("web|any").source() else {
        panic!()
    };
    assert!(params.is_empty());
    let Source::Consul { path, params, .. } = Dependency::key_prefix("a/b").unwrap().source()
    else {
        panic!()
    };
    assert_eq!(
        (path.as_str(), params[0].0.as_str()),
        ("/v1/kv/a/b", "recurse")
    );
    assert!(matches!(
        Dependency::Datacenters {
            ignore_inaccessible: false
        }
        .source(),
        Source::Consul {
            blocking: false,
            ..
        }
    ));
    assert_eq!(health("web").to_string(), "health.service(web|passing)");
}
