use super::*;

fn json(s: &str) -> Value {
    from_serde(&serde_json::from_str(s).unwrap(), true)
}

#[test]
fn go_json() {
    let v = json(r#"{"b": 1e21, "a": 1e-7, "c": 0.5, "d": "<x>&"}"#);
    assert_eq!(
        to_json(&v, None, true).unwrap(),
        r#"{"a":1e-7,"b":1e+21,"c":0.5,"d":"\u003cx\u003e\u0026"}"#
    );
    assert_eq!(to_json(&json("[]"), Some("  "), true).unwrap(), "[]");
}

#[test]
fn struct_order_is_go_field_order() {
    let v = json(r#"{"Tags": [], "Name": "web"}"#);
    assert_eq!(
        to_json(&v, None, true).unwrap(),
        r#"{"Name":"web","Tags":[]}"#
    );
    let kp = json(
        r#"{"Session":"","Flags":0,"LockIndex":0,"ModifyIndex":1,"CreateIndex":1,"Value":"v","Key":"k","Path":"p/k"}"#,
    );
    assert!(
        to_json(&kp, None, true)
            .unwrap()
            .starts_with(r#"{"Path":"p/k","Key":"k""#)
    );
    assert!(
        to_yaml(&kp)
            .unwrap()
            .starts_with("path: p/k\nkey: k\nvalue: v\n")
    );
}

#[test]
fn yaml_v2_shapes() {
    let v = json(r#"{"s": "a: b", "num": "10", "l": [{"x": 1}, "y"], "e": {}, "m": "two\nlines"}"#);
    assert_eq!(
        to_yaml(&v).unwrap(),
        "e: {}\nl:\n- x: 1\n- \"y\"\nm: |-\n  two\n  lines\nnum: \"10\"\ns: 'a: b'"
    );
}

#[test]
fn toml_shapes() {
    let v = json(r#"{"a": 1, "t": {"x": "y", "u": {"k": true}}, "arr": [{"n": 1}]}"#);
    assert_eq!(
        to_toml(&v).unwrap(),
        "a = 1.0\n\n[[arr]]\n  n = 1.0\n\n[t]\n  x = \"y\"\n\n  [t.u]\n    k = true"
    );
    assert!(to_toml(&json("[1]")).is_err());
}

#[test]
fn go_float_formatting() {
    assert_eq!(go_float_g(2.5), "2.5");
    assert_eq!(go_float_g(1e21), "1e+21");
    assert_eq!(go_float_g(1e-5), "1e-05");
    assert_eq!(go_float_g(100.0), "100");
}
