//! Pure helper functions (no dependencies): strings, lists, maps, parsing
//! and encoding, with upstream's argument order (the piped value is last).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use regex::Regex;

use super::{Args, FuncResult, field, go_type, list, string};
use crate::value::{self, Value};

/// `env`, `mustEnv`, `envOrDefault`: the command environment first, then the
/// process environment.
pub(super) fn env(name: &str, a: &Args<'_>, custom: &[(String, String)]) -> FuncResult {
    let key = a.str(0)?;
    let custom_val = custom
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone());
    match name {
        "env" => {
            a.exact(1)?;
            Ok(string(
                custom_val.unwrap_or_else(|| std::env::var(key).unwrap_or_default()),
            ))
        }
        "mustEnv" => {
            a.exact(1)?;
            let v = custom_val
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| std::env::var(key).unwrap_or_default());
            if v.is_empty() {
                return Err(format!("required environment variable {key} is empty"));
            }
            Ok(string(v))
        }
        _ => {
            a.exact(2)?;
            let def = a.str(1)?;
            Ok(string(
                custom_val
                    .or_else(|| std::env::var(key).ok())
                    .unwrap_or_else(|| def.to_string()),
            ))
        }
    }
}

/// Upstream's `in`: list membership (same-kind ints, floats, strings) or
/// substring for strings.
pub(crate) fn in_list(l: &Value, v: &Value) -> bool {
    match l {
        Value::List(items) => items.iter().any(|x| match (x, v) {
            (Value::Int(x), Value::Int(v)) => x == v,
            (Value::Float(x), Value::Float(v)) => x == v,
            (Value::String(x), Value::String(v)) => x == v,
            _ => false,
        }),
        Value::String(s) => matches!(v, Value::String(n) if s.contains(n.as_ref())),
        _ => false,
    }
}

fn map(m: BTreeMap<Arc<str>, Value>) -> Value {
    Value::Map(Arc::new(m))
}

fn regex(re: &str) -> Result<Regex, String> {
    Regex::new(re).map_err(|e| format!("error parsing regexp: {e}"))
}

/// Go's `strconv` error text (`strconv.ParseInt: parsing "x": invalid syntax`).
fn strconv_err(func: &str, upstream: &str, s: &str, range: bool) -> String {
    let why = if range {
        "value out of range"
    } else {
        "invalid syntax"
    };
    format!("{upstream}: strconv.{func}: parsing {s:?}: {why}")
}

fn int_parse_err(e: &std::num::ParseIntError) -> bool {
    matches!(
        e.kind(),
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
    )
}

/// Go's `strconv.ParseBool` accepted spellings.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `cases.Title(language.Und, cases.NoLower)`: upper-case the first letter
/// of each word, leave the rest alone.
fn to_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_alphanumeric() || (in_word && (c == '\'' || c == '’')) {
            if in_word {
                out.push(c);
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            in_word = false;
            out.push(c);
        }
    }
    out
}

fn explode_into(
    m: &mut BTreeMap<Arc<str>, Value>,
    k: &str,
    v: Value,
    p: &str,
) -> Result<(), String> {
    if let Some((top, rest)) = k.split_once('/') {
        let entry = m
            .entry(top.into())
            .or_insert_with(|| Value::Map(Arc::default()));
        let Value::Map(nest) = entry else {
            return Err(format!(
                "not a map: {p:?}: {top:?} already has value {:?}",
                entry.to_string()
            ));
        };
        return explode_into(Arc::make_mut(nest), rest, v, k);
    }
    if !k.is_empty() {
        m.insert(k.into(), v);
    }
    Ok(())
}

fn tags_of(item: &Value) -> &[Value] {
    match item.field("Tags").or_else(|| item.field("ServiceTags")) {
        Some(Value::List(l)) => l,
        _ => &[],
    }
}

pub(super) fn call(name: &str, a: &Args<'_>) -> FuncResult {
    match name {
        "base64Decode" | "base64URLDecode" => {
            a.exact(1)?;
            let engine = if name == "base64Decode" {
                &base64::engine::general_purpose::STANDARD
            } else {
                &base64::engine::general_purpose::URL_SAFE
            };
            let bytes = engine
                .decode(a.str(0)?)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok(string(String::from_utf8_lossy(&bytes).into_owned()))
        }
        "base64Encode" | "base64URLEncode" => {
            a.exact(1)?;
            let engine = if name == "base64Encode" {
                &base64::engine::general_purpose::STANDARD
            } else {
                &base64::engine::general_purpose::URL_SAFE
            };
            Ok(string(engine.encode(a.str(0)?)))
        }
        "byKey" => {
            a.exact(1)?;
            let mut out: BTreeMap<Arc<str>, Value> = BTreeMap::new();
            for pair in a.list(0)? {
                let key = field(pair, "Key").as_str().unwrap_or("");
                let (top, rest) = key.split_once('/').unwrap_or((key, ""));
                if rest.is_empty() {
                    continue;
                }
                let mut p = match pair {
                    Value::Map(m) => (**m).clone(),
                    _ => BTreeMap::new(),
                };
                p.insert("Key".into(), string(rest));
                let group = out
                    .entry(top.into())
                    .or_insert_with(|| Value::Map(Arc::default()));
                if let Value::Map(g) = group {
                    Arc::make_mut(g).insert(rest.into(), map(p));
                }
            }
            Ok(map(out))
        }
        "byTag" => {
            a.exact(1)?;
            let mut out: BTreeMap<Arc<str>, Vec<Value>> = BTreeMap::new();
            for item in a.list(0)? {
                for t in tags_of(item) {
                    if let Some(t) = t.as_str() {
                        out.entry(t.into()).or_default().push(item.clone());
                    }
                }
            }
            Ok(map(out.into_iter().map(|(k, v)| (k, list(v))).collect()))
        }
        "byPort" => {
            // Keys are ints in Go; here they are strings (ranges sort as text).
            a.exact(1)?;
            let mut out: BTreeMap<Arc<str>, Vec<Value>> = BTreeMap::new();
            for item in a.list(0)? {
                let port = item
                    .field("Port")
                    .or_else(|| item.field("ServicePort"))
                    .cloned()
                    .unwrap_or(Value::Int(0));
                out.entry(port.to_string().into())
                    .or_default()
                    .push(item.clone());
            }
            Ok(map(out.into_iter().map(|(k, v)| (k, list(v))).collect()))
        }
        "byMeta" => {
            a.exact(2)?;
            let spec = a.str(0)?;
            let norm = regex("[^a-zA-Z0-9_-]")?;
            let mut out: BTreeMap<Arc<str>, Vec<Value>> = BTreeMap::new();
            for s in a.list(1)? {
                let meta = field(s, "ServiceMeta");
                let mut parts = Vec::new();
                for key in spec.split(',') {
                    let real = key.strip_suffix("|int").unwrap_or(key);
                    let val = field(meta, real).as_str().unwrap_or("");
                    let mut value = if !val.is_empty() {
                        val.to_string()
                    } else if key.ends_with("|int") {
                        "0".into()
                    } else {
                        format!("_no_{real}_")
                    };
                    if key.ends_with("|int") {
                        let i: i64 = value.parse().map_err(|_| {
                            format!(
                                "cannot parse {value} as number : strconv.Atoi: parsing {value:?}: invalid syntax"
                            )
                        })?;
                        value = format!("{i:05}");
                    }
                    parts.push(norm.replace_all(&value, "_").into_owned());
                }
                out.entry(parts.join("_").into())
                    .or_default()
                    .push(s.clone());
            }
            Ok(map(out.into_iter().map(|(k, v)| (k, list(v))).collect()))
        }
        "contains" => {
            a.exact(2)?;
            Ok(Value::Bool(in_list(a.get(1), a.get(0))))
        }
        "in" => {
            a.exact(2)?;
            Ok(Value::Bool(in_list(a.get(0), a.get(1))))
        }
        "containsAll" | "containsAny" | "containsNone" | "containsNotAll" => {
            a.exact(2)?;
            let (ret_true, invert) = match name {
                "containsAll" => (true, true),
                "containsAny" => (false, false),
                "containsNone" => (true, false),
                _ => (false, true),
            };
            let l = a.get(1);
            for v in a.list(0)? {
                if in_list(l, v) != invert {
                    return Ok(Value::Bool(!ret_true));
                }
            }
            Ok(Value::Bool(ret_true))
        }
        "explode" => {
            a.exact(1)?;
            let mut out = BTreeMap::new();
            for pair in a.list(0)? {
                let key = field(pair, "Key").as_str().unwrap_or("");
                explode_into(&mut out, key, field(pair, "Value").clone(), key)
                    .map_err(|e| format!("explode: {e}"))?;
            }
            Ok(map(out))
        }
        "explodeMap" => {
            a.exact(1)?;
            let mut out = BTreeMap::new();
            if let Value::Map(m) = a.get(0) {
                for (k, v) in m.iter() {
                    explode_into(&mut out, k, v.clone(), k)
                        .map_err(|e| format!("explodeMap: {e}"))?;
                }
            }
            Ok(map(out))
        }
        "mergeMap" | "mergeMapWithOverride" => {
            // mergo.Map: fills keys missing in dst (override: src wins), recursively for maps.
            a.exact(2)?;
            fn merge(dst: &Value, src: &Value, over: bool) -> Value {
                match (dst, src) {
                    (Value::Map(d), Value::Map(s)) => {
                        let mut out = (**d).clone();
                        for (k, sv) in s.iter() {
                            let merged = match out.get(k) {
                                Some(dv @ Value::Map(_)) if matches!(sv, Value::Map(_)) => {
                                    merge(dv, sv, over)
                                }
                                Some(dv) if !over && dv.is_truthy() => dv.clone(),
                                Some(_) | None => sv.clone(),
                            };
                            out.insert(k.clone(), merged);
                        }
                        Value::Map(Arc::new(out))
                    }
                    _ => dst.clone(),
                }
            }
            Ok(merge(a.get(0), a.get(1), name == "mergeMapWithOverride"))
        }
        "indent" => {
            a.exact(2)?;
            let n = a.int(0)?;
            if n < 0 {
                return Err("indent value must be a positive integer".into());
            }
            let prefix = " ".repeat(n as usize);
            let mut out = String::new();
            let mut start = true;
            for c in a.str(1)?.chars() {
                if start && c != '\n' {
                    out.push_str(&prefix);
                }
                out.push(c);
                start = c == '\n';
            }
            Ok(string(out))
        }
        "loop" => {
            let to64 = |v: &Value| -> Result<i64, String> {
                match v {
                    Value::Int(i) => Ok(*i),
                    Value::Uint(u) => Ok(*u as i64),
                    Value::String(s) => {
                        if s.is_empty() {
                            Ok(0)
                        } else {
                            s.parse()
                                .map_err(|_| strconv_err("ParseInt", "parseInt", s, false))
                        }
                    }
                    other => Err(format!("loop: bad argument type: {}", go_type(other))),
                }
            };
            let (start, stop) = match a.len() {
                1 => (0, to64(a.get(0))?),
                2 => (to64(a.get(0))?, to64(a.get(1))?),
                n => {
                    return Err(format!(
                        "loop: wrong number of arguments, expected 1 or 2, but got {n}"
                    ));
                }
            };
            Ok(list((start..stop).map(Value::Int).collect()))
        }
        "join" => {
            a.exact(2)?;
            let sep = a.str(0)?;
            let parts: Vec<String> = a
                .list(1)?
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.to_string()),
                    other => Err(format!(
                        "wrong type for value; expected []string; got {}",
                        go_type(other)
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok(string(parts.join(sep)))
        }
        "split" => {
            a.exact(2)?;
            let (sep, s) = (a.str(0)?, a.str(1)?.trim());
            if s.is_empty() {
                return Ok(list(vec![]));
            }
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| string(c.to_string())).collect()
            } else {
                s.split(sep).map(string).collect()
            };
            Ok(list(parts))
        }
        "splitToMap" => {
            a.exact(3)?;
            let (sep1, sep2, s) = (a.str(0)?, a.str(1)?, a.str(2)?.trim());
            let mut out = BTreeMap::new();
            if !s.is_empty() {
                for part in s.split(sep1) {
                    if let Some((k, v)) = part.split_once(sep2) {
                        out.insert(k.into(), string(v));
                    }
                }
            }
            Ok(map(out))
        }
        "trim" => {
            a.exact(2)?;
            let cut: Vec<char> = a.str(0)?.chars().collect();
            Ok(string(a.str(1)?.trim_matches(cut.as_slice())))
        }
        "trimPrefix" => {
            a.exact(2)?;
            let (p, s) = (a.str(0)?, a.str(1)?);
            Ok(string(s.strip_prefix(p).unwrap_or(s)))
        }
        "trimSuffix" => {
            a.exact(2)?;
            let (p, s) = (a.str(0)?, a.str(1)?);
            Ok(string(s.strip_suffix(p).unwrap_or(s)))
        }
        "trimSpace" => {
            a.exact(1)?;
            Ok(string(a.str(0)?.trim()))
        }
        "toLower" => {
            a.exact(1)?;
            Ok(string(a.str(0)?.to_lowercase()))
        }
        "toUpper" => {
            a.exact(1)?;
            Ok(string(a.str(0)?.to_uppercase()))
        }
        "toTitle" => {
            a.exact(1)?;
            Ok(string(to_title(a.str(0)?)))
        }
        "replaceAll" => {
            a.exact(3)?;
            let (f, t, s) = (a.str(0)?, a.str(1)?, a.str(2)?);
            Ok(string(s.replace(f, t)))
        }
        "regexReplaceAll" => {
            a.exact(3)?;
            let (re, repl, s) = (regex(a.str(0)?)?, a.str(1)?, a.str(2)?);
            Ok(string(re.replace_all(s, repl).into_owned()))
        }
        "regexMatch" => {
            a.exact(2)?;
            Ok(Value::Bool(regex(a.str(0)?)?.is_match(a.str(1)?)))
        }
        "parseBool" => {
            a.exact(1)?;
            let s = a.str(0)?;
            if s.is_empty() {
                return Ok(Value::Bool(false));
            }
            parse_bool(s)
                .map(Value::Bool)
                .ok_or_else(|| strconv_err("ParseBool", "parseBool", s, false))
        }
        "parseInt" => {
            a.exact(1)?;
            let s = a.str(0)?;
            if s.is_empty() {
                return Ok(Value::Int(0));
            }
            s.parse::<i64>()
                .map(Value::Int)
                .map_err(|e| strconv_err("ParseInt", "parseInt", s, int_parse_err(&e)))
        }
        "parseUint" => {
            a.exact(1)?;
            let s = a.str(0)?;
            if s.is_empty() {
                return Ok(Value::Uint(0));
            }
            if s.starts_with('+') {
                return Err(strconv_err("ParseUint", "parseUint", s, false));
            }
            s.parse::<u64>()
                .map(Value::Uint)
                .map_err(|e| strconv_err("ParseUint", "parseUint", s, int_parse_err(&e)))
        }
        "parseFloat" => {
            a.exact(1)?;
            let s = a.str(0)?;
            if s.is_empty() {
                return Ok(Value::Float(0.0));
            }
            s.parse::<f64>()
                .map(Value::Float)
                .map_err(|_| strconv_err("ParseFloat", "parseFloat", s, false))
        }
        "parseJSON" => {
            a.exact(1)?;
            let s = a.str(0)?;
            if s.is_empty() {
                return Ok(Value::Map(Arc::default()));
            }
            let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
            // Go unmarshals JSON numbers into float64.
            Ok(value::from_serde(&v, true))
        }
        "toJSON" | "toUnescapedJSON" => {
            a.exact(1)?;
            value::to_json(a.get(0), None, name == "toJSON")
                .map(string)
                .map_err(|e| format!("{name}: {e}"))
        }
        "toJSONPretty" | "toUnescapedJSONPretty" => {
            a.exact(1)?;
            value::to_json(a.get(0), Some("  "), name == "toJSONPretty")
                .map(string)
                .map_err(|e| format!("{name}: {e}"))
        }
        "toYAML" => {
            a.exact(1)?;
            value::to_yaml(a.get(0))
                .map(string)
                .map_err(|e| format!("toYAML: {e}"))
        }
        "toTOML" => {
            a.exact(1)?;
            value::to_toml(a.get(0))
                .map(string)
                .map_err(|e| format!("toTOML: {e}"))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}
