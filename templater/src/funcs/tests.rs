use super::*;

fn call(name: &str, args: &[Value]) -> FuncResult {
    Funcs::new(Brain::new(), Arc::default(), SystemTime::UNIX_EPOCH).call(name, args)
}

fn s(v: &str) -> Value {
    string(v)
}

#[test]
fn api_functions_record_missing_and_return_empty() {
    let f = Funcs::new(Brain::new(), Arc::default(), SystemTime::UNIX_EPOCH);
    assert_eq!(f.call("service", &[s("web")]).unwrap().to_string(), "[]");
    assert_eq!(
        f.call("keyOrDefault", &[s("k"), s("d")])
            .unwrap()
            .to_string(),
        "d"
    );
    assert!(matches!(f.call("node", &[]).unwrap(), Value::Nil));
    // An empty name is no dependency at all.
    assert_eq!(f.call("service", &[s("")]).unwrap().to_string(), "[]");
    let (used, missing) = f.take_deps();
    assert_eq!(used.len(), 3);
    assert_eq!(used, missing);
    assert!(f.call("service", &[s("bad name")]).is_err());
}

#[test]
fn reversed_math() {
    let i = Value::Int;
    assert_eq!(call("subtract", &[i(1), i(5)]).unwrap().to_string(), "4");
    assert_eq!(call("divide", &[i(2), i(7)]).unwrap().to_string(), "3");
    assert_eq!(
        call("divide", &[Value::Float(2.0), i(7)])
            .unwrap()
            .to_string(),
        "3.5"
    );
    assert_eq!(call("modulo", &[i(3), i(10)]).unwrap().to_string(), "1");
    assert!(
        call("divide", &[i(0), i(1)])
            .unwrap_err()
            .contains("divide by zero")
    );
    assert!(call("modulo", &[Value::Float(1.0), i(1)]).is_err());
    assert!(
        call("add", &[s("x"), i(1)])
            .unwrap_err()
            .contains("unknown type")
    );
}

#[test]
fn parse_errors_read_like_go() {
    assert_eq!(
        call("parseInt", &[s("x")]).unwrap_err(),
        r#"parseInt: strconv.ParseInt: parsing "x": invalid syntax"#
    );
    assert_eq!(
        call("parseInt", &[s("99999999999999999999")]).unwrap_err(),
        r#"parseInt: strconv.ParseInt: parsing "99999999999999999999": value out of range"#
    );
    assert_eq!(call("parseBool", &[s("T")]).unwrap().to_string(), "true");
    assert!(call("parseUint", &[s("-1")]).is_err());
}

#[test]
fn membership() {
    let l = list(vec![s("a"), Value::Int(1)]);
    assert_eq!(
        call("contains", &[s("a"), l.clone()]).unwrap().to_string(),
        "true"
    );
    assert_eq!(
        call("in", &[l.clone(), Value::Int(1)]).unwrap().to_string(),
        "true"
    );
    // Go compares same kinds only.
    assert_eq!(
        call("in", &[l, Value::Float(1.0)]).unwrap().to_string(),
        "false"
    );
    assert!(call("indent", &[Value::Int(-1), s("x")]).is_err());
    assert_eq!(
        call("indent", &[Value::Int(2), s("a\n\nb")])
            .unwrap()
            .to_string(),
        "  a\n\n  b"
    );
}

#[test]
fn explode_conflict_is_an_error() {
    let pair = |k: &str, v: &str| {
        Value::Map(Arc::new(
            [("Key".into(), s(k)), ("Value".into(), s(v))]
                .into_iter()
                .collect(),
        ))
    };
    let ok = call("explode", &[list(vec![pair("a/b", "1"), pair("a/c", "2")])]).unwrap();
    assert_eq!(ok.to_string(), "map[a:map[b:1 c:2]]");
    assert!(call("explode", &[list(vec![pair("a", "1"), pair("a/b", "2")])]).is_err());
}
