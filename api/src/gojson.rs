//! Go's `encoding/json` output, for the places where users compare bytes with
//! what Consul prints (`kv export`, `version -format=json`, watch handlers' stdin).

use serde::Serialize;

/// JSON indented like Go's `json.MarshalIndent(v, "", indent)`, including Go's
/// escaping of `<`, `>`, `&`, U+2028 and U+2029 inside strings.
pub fn go_json_indent<T: Serialize>(value: &T, indent: &str) -> serde_json::Result<String> {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value.serialize(&mut ser)?;
    let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
    // These characters can only occur inside JSON strings, so a plain replace is exact.
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_indent_matches_marshal_indent() {
        #[derive(Serialize)]
        struct E {
            key: String,
            flags: u64,
        }
        let v = vec![E {
            key: "a<b>&".into(),
            flags: 1,
        }];
        let text = go_json_indent(&v, "\t").unwrap();
        assert_eq!(
            text,
            "[\n\t{\n\t\t\"key\": \"a\\u003cb\\u003e\\u0026\",\n\t\t\"flags\": 1\n\t}\n]"
        );
        assert_eq!(go_json_indent(&Vec::<E>::new(), "\t").unwrap(), "[]");
    }
}
