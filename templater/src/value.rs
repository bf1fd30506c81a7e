//! The neutral value type the template functions work on (gotmpl's `Value`,
//! which models Go's `interface{}`: nil, bool, int64, uint64, float64,
//! string, slices, string-keyed maps), and Go-compatible encoders for it:
//! `encoding/json`, `gopkg.in/yaml.v2` and `BurntSushi/toml` output.
//!
//! Maps are sorted (as Go encodes maps), but Go encodes *structs* in field
//! order. Values lose the struct/map distinction, so a map whose key set is
//! exactly one of consul-template's structs ([`STRUCT_LAYOUTS`]) is encoded
//! in that struct's field order (and, for YAML, with yaml.v2's lower-cased
//! field names) — the only place the encoders need type knowledge.

use std::fmt::Write as _;

pub use gotmpl::Value;

/// Go field order of the structs templates receive from the API functions.
pub const STRUCT_LAYOUTS: &[&[&str]] = &[
    // HealthService
    &[
        "Node",
        "NodeID",
        "NodeAddress",
        "NodeTaggedAddresses",
        "NodeMeta",
        "ServiceMeta",
        "Address",
        "ServiceTaggedAddresses",
        "ID",
        "Name",
        "Tags",
        "Checks",
        "Status",
        "Port",
        "Weights",
    ],
    // api.HealthCheck (Namespace/Partition/PeerName are omitempty and empty here)
    &[
        "Node",
        "CheckID",
        "Name",
        "Status",
        "Notes",
        "Output",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
        "Type",
        "ExposedPort",
        "Definition",
        "CreateIndex",
        "ModifyIndex",
    ],
    // CatalogService
    &[
        "ID",
        "Node",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "NodeMeta",
        "ServiceID",
        "ServiceName",
        "ServiceAddress",
        "ServiceTags",
        "ServiceMeta",
        "ServicePort",
    ],
    // CatalogSnippet
    &["Name", "Tags"],
    // Node
    &[
        "ID",
        "Node",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "Meta",
    ],
    // CatalogNodeService
    &[
        "ID",
        "Service",
        "Tags",
        "Meta",
        "Port",
        "Address",
        "EnableTagOverride",
    ],
    // CatalogNode
    &["Node", "Services"],
    // KeyPair
    &[
        "Path",
        "Key",
        "Value",
        "CreateIndex",
        "ModifyIndex",
        "LockIndex",
        "Flags",
        "Session",
    ],
    // api.ServiceAddress
    &["Address", "Port"],
    // api.AgentWeights
    &["Passing", "Warning"],
];

/// The entries of a map in encoding order, and whether it is a known struct.
pub(crate) fn ordered(
    m: &std::collections::BTreeMap<std::sync::Arc<str>, Value>,
) -> (Vec<(&str, &Value)>, bool) {
    let layout = STRUCT_LAYOUTS
        .iter()
        .find(|l| l.len() == m.len() && l.iter().all(|k| m.contains_key(*k)));
    match layout {
        Some(l) => (l.iter().map(|k| (*k, &m[*k])).collect(), true),
        None => (m.iter().map(|(k, v)| (k.as_ref(), v)).collect(), false),
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits, then Go's %g exponent rule (exp < -4 || exp >= 21
    // for the shortest form, where 21 = eprec when precision is -1).
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `encoding/json` float64 form.
fn json_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("json: unsupported value: {}", go_float_g(f)));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        Ok(format!("{mant}e{sign}{}", exp.abs()))
    } else {
        Ok(format!("{f}"))
    }
}

fn json_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Marshal` (indent = None) or `json.MarshalIndent(v, "", indent)`.
pub fn to_json(v: &Value, indent: Option<&str>, escape_html: bool) -> Result<String, String> {
    let mut out = String::new();
    json_value(&mut out, v, indent, 0, escape_html)?;
    Ok(out)
}

fn json_value(
    out: &mut String,
    v: &Value,
    indent: Option<&str>,
    depth: usize,
    html: bool,
) -> Result<(), String> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&u.to_string()),
        Value::Float(f) => out.push_str(&json_float(*f)?),
        Value::String(s) => json_string(out, s, html),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json_value(out, item, indent, depth + 1, html)?;
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Map(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, item)) in ordered(m).0.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json_string(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                json_value(out, item, indent, depth + 1, html)?;
            }
            newline(out, depth);
            out.push('}');
        }
        Value::Function(_) => return Err("json: unsupported type: func".into()),
    }
    Ok(())
}

/// Whether yaml.v2 would read this plain scalar back as something other than
/// a string (then it double-quotes it).
fn yaml_resolves_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let plain = s.replace('_', "");
    let unsigned = plain.trim_start_matches(['+', '-']);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if let Some(hex) = unsigned.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return true;
    }
    if let Some(bin) = unsigned.strip_prefix("0b")
        && !bin.is_empty()
        && bin.bytes().all(|b| b == b'0' || b == b'1')
    {
        return true;
    }
    // Floats like 1.5, .5, 1e3, 1.5e-3; base-60 like 1:30.
    let float_like = unsigned.bytes().any(|b| b.is_ascii_digit())
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && unsigned.parse::<f64>().is_ok();
    let base60 = unsigned.contains(':')
        && unsigned
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    float_like || base60
}

/// Whether yaml.v2's emitter may write `s` as a plain block scalar.
fn yaml_plain_ok(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    let last = s.chars().last().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !(matches!(first, '-' | '?' | ':') && s.len() > 1 && !s[1..].starts_with(' '))
    {
        return false;
    }
    if first == ' ' || last == ' ' || s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    s.chars()
        .all(|c| c == ' ' || (!c.is_control() && c != '\u{feff}'))
}

fn yaml_scalar(s: &str) -> String {
    if yaml_resolves_non_string(s) {
        let mut out = String::new();
        json_string(&mut out, s, false);
        out
    } else if s.contains('\n') {
        // yaml.v2 uses literal style for multi-line strings; handled by the caller.
        String::new()
    } else if yaml_plain_ok(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// `yaml.Marshal` (gopkg.in/yaml.v2) of a value, trimmed as `toYAML` does.
pub fn to_yaml(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    yaml_block(&mut out, v, 0)?;
    Ok(out.trim().to_string())
}

fn yaml_inline(v: &Value, indent: usize) -> Option<String> {
    Some(match v {
        Value::Nil => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => match go_float_g(*f).as_str() {
            "+Inf" => ".inf".into(),
            "-Inf" => "-.inf".into(),
            "NaN" => ".nan".into(),
            g => g.to_string(),
        },
        Value::String(s) if s.contains('\n') => {
            let chomp = if s.ends_with('\n') { "" } else { "-" };
            let pad = " ".repeat(indent + 2);
            let body: Vec<String> = s
                .trim_end_matches('\n')
                .split('\n')
                .map(|l| {
                    if l.is_empty() {
                        String::new()
                    } else {
                        format!("{pad}{l}")
                    }
                })
                .collect();
            format!("|{chomp}\n{}", body.join("\n"))
        }
        Value::String(s) => yaml_scalar(s),
        Value::List(l) if l.is_empty() => "[]".into(),
        Value::Map(m) if m.is_empty() => "{}".into(),
        _ => return None,
    })
}

/// Writes `v` with the cursor already at column `indent`; later lines are padded.
fn yaml_block(out: &mut String, v: &Value, indent: usize) -> Result<(), String> {
    let pad = " ".repeat(indent);
    match v {
        Value::Map(m) if !m.is_empty() => {
            let (entries, is_struct) = ordered(m);
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&pad);
                }
                let key = if is_struct {
                    k.to_lowercase()
                } else {
                    yaml_scalar(k)
                };
                out.push_str(&key);
                out.push(':');
                match yaml_inline(item, indent) {
                    Some(s) => {
                        out.push(' ');
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => {
                        out.push('\n');
                        // yaml.v2 does not indent sequences under a mapping key.
                        let child = if matches!(item, Value::List(_)) {
                            indent
                        } else {
                            indent + 2
                        };
                        out.push_str(&" ".repeat(child));
                        yaml_block(out, item, child)?;
                    }
                }
            }
        }
        Value::List(l) if !l.is_empty() => {
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(&pad);
                }
                out.push_str("- ");
                match yaml_inline(item, indent) {
                    Some(s) => {
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => yaml_block(out, item, indent + 2)?,
                }
            }
        }
        Value::Function(_) => return Err("cannot marshal a function".into()),
        other => {
            let s = yaml_inline(other, indent).unwrap_or_default();
            out.push_str(&s);
            out.push('\n');
        }
    }
    Ok(())
}

/// `toml.NewEncoder(w).Encode(v)` (BurntSushi/toml v1), trimmed as `toTOML` does.
pub fn to_toml(v: &Value) -> Result<String, String> {
    let Value::Map(_) = v else {
        return Err("toml: top-level values must be Go maps or structs".into());
    };
    let mut out = String::new();
    toml_table(&mut out, v, &mut Vec::new())?;
    Ok(out.trim().to_string())
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        let mut s = String::new();
        json_string(&mut s, k, false);
        s
    }
}

fn toml_inline(v: &Value) -> Result<Option<String>, String> {
    Ok(Some(match v {
        Value::Nil => return Ok(None),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => {
            if f.is_nan() {
                "nan".into()
            } else if f.is_infinite() {
                if *f > 0.0 { "inf" } else { "-inf" }.into()
            } else {
                let s = go_float_g(*f);
                if s.contains(['.', 'e', 'n', 'N']) {
                    s
                } else {
                    format!("{s}.0")
                }
            }
        }
        Value::String(s) => {
            let mut out = String::new();
            json_string(&mut out, s, false);
            out
        }
        Value::List(l) => {
            if l.iter().any(|i| matches!(i, Value::Map(_))) {
                return Ok(None);
            }
            let mut parts = Vec::new();
            for i in l.iter() {
                match toml_inline(i)? {
                    Some(s) => parts.push(s),
                    None => return Err("toml: unsupported array element".into()),
                }
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Map(_) => return Ok(None),
        Value::Function(_) => return Err("toml: unsupported type: func".into()),
    }))
}

fn toml_table(out: &mut String, v: &Value, path: &mut Vec<String>) -> Result<(), String> {
    let Value::Map(m) = v else { return Ok(()) };
    // BurntSushi indents a key by (length of its full key path - 1).
    let indent = "  ".repeat(path.len());
    let (entries, _) = ordered(m);
    // Plain keys first, then sub-tables and arrays of tables, as BurntSushi does.
    for (k, item) in &entries {
        if let Some(s) = toml_inline(item)? {
            let _ = writeln!(out, "{indent}{} = {s}", toml_key(k));
        }
    }
    for (k, item) in &entries {
        match item {
            Value::Map(_) => {
                path.push(toml_key(k));
                let ind = "  ".repeat(path.len() - 1);
                let _ = write!(out, "\n{ind}[{}]\n", path.join("."));
                toml_table(out, item, path)?;
                path.pop();
            }
            Value::List(l) if l.iter().any(|i| matches!(i, Value::Map(_))) => {
                path.push(toml_key(k));
                let ind = "  ".repeat(path.len() - 1);
                for t in l.iter() {
                    let _ = write!(out, "\n{ind}[[{}]]\n", path.join("."));
                    toml_table(out, t, path)?;
                }
                path.pop();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Converts to JSON for the Handlebars dialect.
pub fn to_serde(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_serde).collect()),
        Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_string(), to_serde(v)))
                .collect(),
        ),
    }
}

/// Converts JSON (Handlebars arguments, `parseJSON`) into a value; JSON
/// numbers become float64 as in Go's `json.Unmarshal` into `interface{}`.
pub fn from_serde(v: &serde_json::Value, numbers_as_float: bool) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if !numbers_as_float {
                if let Some(i) = n.as_i64() {
                    return Value::Int(i);
                }
                if let Some(u) = n.as_u64() {
                    return Value::Uint(u);
                }
            }
            Value::Float(n.as_f64().unwrap_or(0.0))
        }
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(a) => Value::List(
            a.iter()
                .map(|x| from_serde(x, numbers_as_float))
                .collect::<Vec<_>>()
                .into(),
        ),
        serde_json::Value::Object(o) => Value::Map(std::sync::Arc::new(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), from_serde(v, numbers_as_float)))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests;
