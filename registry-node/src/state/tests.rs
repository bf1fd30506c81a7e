//! Unit tests of the pure state store: KV semantics, indexes, catalog, sessions, txn.

use std::time::Duration;

use registry_api::{
    CRITICAL, CatalogDeregistration, CatalogRegistration, HealthCheck, KvTxnOp, NodeService,
    PASSING, SessionEntry,
};

use super::*;

fn req(cmd: Command) -> Request {
    Request {
        now_ms: 1_000_000,
        cmd,
    }
}

fn put(store: &mut Store, index: u64, key: &str, value: &str) -> Response {
    let set = KvSet {
        key: key.into(),
        value: Some(value.as_bytes().to_vec()),
        ..Default::default()
    };
    let r = store.apply(index, &req(Command::KvSet(set)));
    store.take_changes();
    r
}

fn node_reg(node: &str, svc: Option<(&str, &str)>) -> CatalogRegistration {
    CatalogRegistration {
        node: node.into(),
        address: "10.0.0.1".into(),
        service: svc.map(|(id, name)| NodeService {
            id: id.into(),
            service: name.into(),
            port: 80,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn kv_put_get_keeps_create_index_and_bumps_modify() {
    let mut s = Store::default();
    assert_eq!(put(&mut s, 5, "a", "1"), Response::Bool(true));
    assert_eq!(put(&mut s, 7, "a", "2"), Response::Bool(true));
    let e = s.kv().get("a").unwrap();
    assert_eq!((e.create_index, e.modify_index), (5, 7));
    assert_eq!(e.value.as_deref(), Some(&b"2"[..]));
}

#[test]
fn kv_cas_create_only_and_index_match() {
    let mut s = Store::default();
    let cas = |c| {
        Command::KvSet(KvSet {
            key: "k".into(),
            cas: Some(c),
            ..Default::default()
        })
    };
    assert_eq!(s.apply(2, &req(cas(0))), Response::Bool(true));
    assert_eq!(
        s.apply(3, &req(cas(0))),
        Response::Bool(false),
        "cas=0 only creates"
    );
    assert_eq!(
        s.apply(4, &req(cas(9))),
        Response::Bool(false),
        "stale index"
    );
    assert_eq!(s.apply(5, &req(cas(2))), Response::Bool(true));
    assert_eq!(s.kv().get("k").unwrap().modify_index, 5);
}

#[test]
fn kv_delete_cas_and_recurse() {
    let mut s = Store::default();
    put(&mut s, 1, "a/1", "x");
    put(&mut s, 2, "a/2", "x");
    put(&mut s, 3, "b", "x");
    let del = |key: &str, recurse, cas| Command::KvDelete {
        key: key.into(),
        recurse,
        cas,
    };
    assert_eq!(
        s.apply(4, &req(del("b", false, Some(0)))),
        Response::Bool(false),
        "cas=0 never deletes"
    );
    assert_eq!(
        s.apply(5, &req(del("b", false, Some(3)))),
        Response::Bool(true)
    );
    assert!(s.kv().get("b").is_none());
    assert_eq!(
        s.apply(6, &req(del("a/", true, None))),
        Response::Bool(true)
    );
    assert!(s.kv().is_empty());
    assert_eq!(
        s.apply(7, &req(del("missing", false, None))),
        Response::Bool(true),
        "missing key deletes fine"
    );
}

#[test]
fn prefix_index_does_not_go_backwards_on_delete() {
    let mut s = Store::default();
    put(&mut s, 1, "p/a", "x");
    put(&mut s, 2, "p/b", "x");
    assert_eq!(s.kv().prefix_index("p/"), 2);
    s.apply(
        3,
        &req(Command::KvDelete {
            key: "p/b".into(),
            recurse: false,
            cas: None,
        }),
    );
    assert_eq!(s.kv().prefix_index("p/"), 3);
    assert_eq!(s.kv().key_index("p/b"), 3);
    assert_eq!(s.view_index(&[WatchKey::Kv("p/b".into())]), 3);
}

#[test]
fn keys_with_separator() {
    let mut s = Store::default();
    for (i, k) in [
        "web/bar",
        "web/foo",
        "web/subdir/x",
        "web/subdir/y",
        "other",
    ]
    .iter()
    .enumerate()
    {
        put(&mut s, i as u64 + 1, k, "v");
    }
    let (keys, _) = s.kv().keys("web/", Some("/"));
    assert_eq!(keys, vec!["web/bar", "web/foo", "web/subdir/"]);
    let (all, _) = s.kv().keys("", None);
    assert_eq!(all.len(), 5);
}

fn with_node_and_session(s: &mut Store, behavior: &str, lock_delay: Duration) -> String {
    let mut reg = node_reg("n1", None);
    reg.checks = vec![HealthCheck {
        check_id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status: PASSING.into(),
        ..Default::default()
    }];
    assert_eq!(
        s.apply(1, &req(Command::Register(Box::new(reg)))),
        Response::Ok
    );
    let session = SessionEntry {
        id: "s1".into(),
        node: "n1".into(),
        behavior: behavior.into(),
        lock_delay,
        node_checks: vec!["serfHealth".into()],
        ..Default::default()
    };
    assert_eq!(
        s.apply(2, &req(Command::SessionCreate(session))),
        Response::Ok
    );
    "s1".into()
}

fn acquire(s: &mut Store, index: u64, now_ms: u64, key: &str, session: &str) -> Response {
    let set = KvSet {
        key: key.into(),
        acquire: Some(session.into()),
        ..Default::default()
    };
    s.apply(
        index,
        &Request {
            now_ms,
            cmd: Command::KvSet(set),
        },
    )
}

#[test]
fn acquire_release_and_lock_index() {
    let mut s = Store::default();
    let sid = with_node_and_session(&mut s, "release", Duration::ZERO);
    assert_eq!(acquire(&mut s, 3, 0, "lock", &sid), Response::Bool(true));
    assert_eq!(s.kv().get("lock").unwrap().lock_index, 1);
    assert_eq!(
        acquire(&mut s, 4, 0, "lock", &sid),
        Response::Bool(true),
        "re-acquire by holder"
    );
    assert_eq!(s.kv().get("lock").unwrap().lock_index, 1);
    // A plain PUT keeps the lock.
    put(&mut s, 5, "lock", "v");
    assert_eq!(s.kv().get("lock").unwrap().session.as_deref(), Some("s1"));
    let release = |who: &str| {
        Command::KvSet(KvSet {
            key: "lock".into(),
            release: Some(who.into()),
            ..Default::default()
        })
    };
    assert_eq!(s.apply(6, &req(release("other"))), Response::Bool(false));
    assert_eq!(s.apply(7, &req(release(&sid))), Response::Bool(true));
    let e = s.kv().get("lock").unwrap();
    assert_eq!((e.session.clone(), e.lock_index), (None, 1));
    assert!(
        matches!(acquire(&mut s, 8, 0, "x", "nope"), Response::Error(_)),
        "unknown session is an error"
    );
}

#[test]
fn destroyed_session_releases_and_lock_delay_applies() {
    let mut s = Store::default();
    let sid = with_node_and_session(&mut s, "release", Duration::from_secs(15));
    acquire(&mut s, 3, 1_000, "lock", &sid);
    s.apply(
        4,
        &Request {
            now_ms: 2_000,
            cmd: Command::SessionDestroy { id: sid.clone() },
        },
    );
    assert_eq!(s.kv().get("lock").unwrap().session, None);
    // New session tries within the delay window, then after it.
    let session = SessionEntry {
        id: "s2".into(),
        node: "n1".into(),
        ..Default::default()
    };
    s.apply(5, &req(Command::SessionCreate(session)));
    assert_eq!(
        acquire(&mut s, 6, 10_000, "lock", "s2"),
        Response::Bool(false),
        "inside lock-delay"
    );
    assert_eq!(
        acquire(&mut s, 7, 17_001, "lock", "s2"),
        Response::Bool(true),
        "after lock-delay"
    );
}

#[test]
fn delete_behavior_removes_held_keys() {
    let mut s = Store::default();
    let sid = with_node_and_session(&mut s, "delete", Duration::ZERO);
    acquire(&mut s, 3, 0, "eph", &sid);
    s.apply(4, &req(Command::SessionDestroy { id: sid }));
    assert!(s.kv().get("eph").is_none());
}

#[test]
fn critical_bound_check_invalidates_session() {
    let mut s = Store::default();
    let sid = with_node_and_session(&mut s, "release", Duration::ZERO);
    acquire(&mut s, 3, 0, "lock", &sid);
    let mut reg = node_reg("n1", None);
    reg.skip_node_update = true;
    reg.checks = vec![HealthCheck {
        check_id: "serfHealth".into(),
        status: CRITICAL.into(),
        ..Default::default()
    }];
    s.apply(4, &req(Command::Register(Box::new(reg))));
    assert!(s.session(&sid).is_none());
    assert_eq!(s.kv().get("lock").unwrap().session, None);
}

#[test]
fn session_needs_node_and_healthy_checks() {
    let mut s = Store::default();
    let session = SessionEntry {
        id: "s".into(),
        node: "ghost".into(),
        ..Default::default()
    };
    assert!(matches!(
        s.apply(1, &req(Command::SessionCreate(session))),
        Response::Error(_)
    ));
    s.apply(2, &req(Command::Register(Box::new(node_reg("n1", None)))));
    let session = SessionEntry {
        id: "s".into(),
        node: "n1".into(),
        node_checks: vec!["serfHealth".into()],
        ..Default::default()
    };
    match s.apply(3, &req(Command::SessionCreate(session))) {
        Response::Error(e) => assert!(e.contains("serfHealth"), "{e}"),
        other => panic!("expected error, got {other:?}"),
    }
}

#[test]
fn catalog_register_is_idempotent_and_granular() {
    let mut s = Store::default();
    s.apply(
        1,
        &req(Command::Register(Box::new(node_reg(
            "n1",
            Some(("web1", "web")),
        )))),
    );
    let first = s.take_changes();
    assert!(first.contains(&WatchKey::Service("web".into())));
    assert_eq!(s.view_index(&[WatchKey::Service("web".into())]), 1);

    // Same registration again: nothing changes, no watcher wakes.
    s.apply(
        2,
        &req(Command::Register(Box::new(node_reg(
            "n1",
            Some(("web1", "web")),
        )))),
    );
    assert!(s.take_changes().is_empty());
    assert_eq!(s.view_index(&[WatchKey::Service("web".into())]), 1);

    // Registering db does not touch web's view.
    s.apply(
        3,
        &req(Command::Register(Box::new(node_reg(
            "n2",
            Some(("db1", "db")),
        )))),
    );
    let changes = s.take_changes();
    assert!(
        !changes.contains(&WatchKey::Service("web".into())),
        "{changes:?}"
    );
    assert_eq!(s.view_index(&[WatchKey::Service("web".into())]), 1);
    assert_eq!(s.view_index(&[WatchKey::Service("db".into())]), 3);
    assert_eq!(s.catalog().service_names().len(), 2);
    assert_eq!(s.catalog().service_nodes("web").len(), 1);
}

#[test]
fn node_check_affects_all_services_on_node() {
    let mut s = Store::default();
    s.apply(
        1,
        &req(Command::Register(Box::new(node_reg(
            "n1",
            Some(("web1", "web")),
        )))),
    );
    s.take_changes();
    let mut reg = node_reg("n1", None);
    reg.checks = vec![HealthCheck {
        check_id: "mem".into(),
        name: "mem".into(),
        status: CRITICAL.into(),
        ..Default::default()
    }];
    s.apply(2, &req(Command::Register(Box::new(reg))));
    assert!(s.take_changes().contains(&WatchKey::Service("web".into())));
    let rows = s.health_service("web");
    assert_eq!(rows[0].checks.len(), 1);
    assert_eq!(rows[0].aggregated_status(), CRITICAL);
}

#[test]
fn check_for_unknown_service_is_rejected_atomically() {
    let mut s = Store::default();
    let mut reg = node_reg("n1", None);
    reg.checks = vec![HealthCheck {
        check_id: "c".into(),
        service_id: "nope".into(),
        ..Default::default()
    }];
    assert!(matches!(
        s.apply(1, &req(Command::Register(Box::new(reg)))),
        Response::Error(_)
    ));
    assert!(s.catalog().node("n1").is_none(), "nothing written on error");
}

#[test]
fn deregister_service_then_node() {
    let mut s = Store::default();
    let mut reg = node_reg("n1", Some(("web1", "web")));
    reg.checks = vec![HealthCheck {
        check_id: "c".into(),
        service_id: "web1".into(),
        status: PASSING.into(),
        ..Default::default()
    }];
    s.apply(1, &req(Command::Register(Box::new(reg))));
    let dereg = |svc: &str| CatalogDeregistration {
        node: "n1".into(),
        service_id: svc.into(),
        ..Default::default()
    };
    s.apply(2, &req(Command::Deregister(dereg("web1"))));
    assert!(s.catalog().service_nodes("web").is_empty());
    assert_eq!(
        s.catalog().node_checks("n1").count(),
        0,
        "service checks go with the service"
    );
    assert_eq!(s.view_index(&[WatchKey::Service("web".into())]), 2);
    s.apply(3, &req(Command::Deregister(dereg(""))));
    assert!(s.catalog().node("n1").is_none());
}

#[test]
fn txn_is_all_or_nothing() {
    let mut s = Store::default();
    put(&mut s, 1, "k", "old");
    let op = |verb: &str, key: &str, index: u64| KvTxnOp {
        verb: verb.into(),
        key: key.into(),
        value: Some(b"new".to_vec()),
        index,
        ..Default::default()
    };
    let ok = s.apply(
        2,
        &req(Command::Txn(vec![
            op("set", "a", 0),
            op("cas", "k", 1),
            op("get", "a", 0),
        ])),
    );
    match ok {
        Response::Txn(r) => {
            assert!(r.errors.is_none());
            let results = r.results.unwrap();
            assert_eq!(results.len(), 3);
            assert_eq!(results[0].kv.value, None, "set results carry no value");
            assert_eq!(results[2].kv.value.as_deref(), Some(&b"new"[..]));
        }
        other => panic!("{other:?}"),
    }
    let bad = s.apply(
        3,
        &req(Command::Txn(vec![
            op("set", "b", 0),
            op("delete", "a", 0),
            op("cas", "k", 1),
        ])),
    );
    match bad {
        Response::Txn(r) => {
            assert!(r.results.is_none());
            assert_eq!(r.errors.unwrap()[0].op_index, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(s.kv().get("b").is_none(), "rolled back");
    assert!(s.kv().get("a").is_some(), "rolled back delete");
    assert!(
        s.take_changes()
            .iter()
            .all(|k| k != &WatchKey::Kv("b".into())),
        "no wake-up for rolled back keys"
    );
    let many = vec![op("get", "a", 0); MAX_TXN_OPS + 1];
    assert!(matches!(
        s.apply(4, &req(Command::Txn(many))),
        Response::Txn(TxnResponse {
            errors: Some(_),
            ..
        })
    ));
}

#[test]
fn snapshot_round_trip() {
    let mut s = Store::default();
    put(&mut s, 1, "a", "1");
    s.apply(
        2,
        &req(Command::Register(Box::new(node_reg(
            "n1",
            Some(("web1", "web")),
        )))),
    );
    let restored = Store::from_snapshot(&s.to_snapshot()).unwrap();
    assert_eq!(restored.index(), 2);
    assert_eq!(restored.kv().get("a"), s.kv().get("a"));
    assert_eq!(
        restored.catalog().service_nodes("web"),
        s.catalog().service_nodes("web")
    );
    assert_eq!(restored.view_index(&[WatchKey::Service("web".into())]), 2);
}
