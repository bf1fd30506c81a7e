//! The consul-template function set, written once over the neutral
//! [`Value`] and shared by both dialects (`gotemplate`, `handlebars`), which
//! only adapt argument passing and errors.
//!
//! API functions (`service`, `key`, `ls`, ...) record each dependency as
//! *used*; when the brain has no data yet they also record it as *missing*
//! and return an empty value, so one pass discovers every dependency it can
//! reach (consul-template's n-pass evaluation, B.4.1).

mod helpers;
mod math;
mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::brain::{Brain, Data};
use crate::dependency::Dependency;
use crate::value::Value;

pub use time::go_time_format;

/// An error from a template function; the dialects prefix the function name.
pub type FuncResult = Result<Value, String>;

/// Everything one render reads and records: a snapshot of the brain, the
/// dependencies seen, the scratchpad (per template and per run, as upstream).
pub struct RunState {
    brain: Brain,
    /// Dependencies the template called.
    pub used: BTreeSet<Dependency>,
    /// Used dependencies without (acceptable) data.
    pub missing: BTreeSet<Dependency>,
    scratch: BTreeMap<String, Value>,
    env: Arc<Vec<(String, String)>>,
    now: SystemTime,
}

/// Shared handle on a [`RunState`]; the function closures of a dialect hold it.
#[derive(Clone)]
pub struct Funcs {
    state: Arc<Mutex<RunState>>,
}

/// Names of the functions in [`Funcs::call`] (`executeTemplate` is provided by
/// each dialect because it needs the parsed template).
pub const NAMES: &[&str] = &[
    // API
    "service",
    "connect",
    "catalogService",
    "services",
    "node",
    "nodes",
    "datacenters",
    "key",
    "keyExists",
    "keyOrDefault",
    "ls",
    "safeLs",
    "tree",
    "safeTree",
    "file",
    // scratch (methods; see gotemplate.rs for the `scratch.Set` rewrite)
    "scratch.Key",
    "scratch.Get",
    "scratch.Set",
    "scratch.SetX",
    "scratch.MapSet",
    "scratch.MapSetX",
    "scratch.MapValues",
    // helpers
    "base64Decode",
    "base64Encode",
    "base64URLDecode",
    "base64URLEncode",
    "byKey",
    "byPort",
    "byTag",
    "byMeta",
    "contains",
    "containsAll",
    "containsAny",
    "containsNone",
    "containsNotAll",
    "env",
    "mustEnv",
    "envOrDefault",
    "explode",
    "explodeMap",
    "mergeMap",
    "mergeMapWithOverride",
    "in",
    "indent",
    "loop",
    "join",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trimSpace",
    "parseBool",
    "parseFloat",
    "parseInt",
    "parseJSON",
    "parseUint",
    "regexReplaceAll",
    "regexMatch",
    "replaceAll",
    "timestamp",
    "toLower",
    "toJSON",
    "toJSONPretty",
    "toUnescapedJSON",
    "toUnescapedJSONPretty",
    "toTitle",
    "toTOML",
    "toUpper",
    "toYAML",
    "split",
    "splitToMap",
    // math
    "add",
    "subtract",
    "multiply",
    "divide",
    "modulo",
    "minimum",
    "maximum",
];

fn lock(state: &Mutex<RunState>) -> MutexGuard<'_, RunState> {
    // A panicking function is reported by gotmpl; the state stays usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Type name in Go's words for error messages.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint64",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

/// Argument access with Go's conversion errors.
pub(crate) struct Args<'a> {
    name: &'a str,
    args: &'a [Value],
}

impl<'a> Args<'a> {
    pub(crate) fn exact(&self, n: usize) -> Result<(), String> {
        if self.args.len() != n {
            return Err(format!(
                "wrong number of args for {}: want {n} got {}",
                self.name,
                self.args.len()
            ));
        }
        Ok(())
    }

    pub(crate) fn get(&self, i: usize) -> &'a Value {
        self.args.get(i).unwrap_or(&Value::Nil)
    }

    pub(crate) fn str(&self, i: usize) -> Result<&'a str, String> {
        match self.get(i) {
            Value::String(s) => Ok(s),
            other => Err(format!(
                "wrong type for value; expected string; got {}",
                go_type(other)
            )),
        }
    }

    /// Every argument as a string (Go variadic `...string`).
    pub(crate) fn strs(&self) -> Result<Vec<&'a str>, String> {
        (0..self.args.len()).map(|i| self.str(i)).collect()
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, String> {
        match self.get(i) {
            Value::Int(n) => Ok(*n),
            Value::Uint(n) => i64::try_from(*n).map_err(|e| e.to_string()),
            other => Err(format!(
                "wrong type for value; expected int; got {}",
                go_type(other)
            )),
        }
    }

    pub(crate) fn list(&self, i: usize) -> Result<&'a [Value], String> {
        match self.get(i) {
            Value::List(l) => Ok(l),
            Value::Nil => Ok(&[]),
            other => Err(format!(
                "wrong type for value; expected slice; got {}",
                go_type(other)
            )),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.args.len()
    }
}

pub(crate) fn string(s: impl Into<Arc<str>>) -> Value {
    Value::String(s.into())
}

pub(crate) fn list(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

/// Field of a map value ("" / nil when absent).
pub(crate) fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
    v.field(name).unwrap_or(&Value::Nil)
}

impl Funcs {
    /// A fresh run over a snapshot of `brain`, with the command environment
    /// `env` (looked up before the process environment) and the clock `now`.
    pub fn new(brain: Brain, env: Arc<Vec<(String, String)>>, now: SystemTime) -> Self {
        Funcs {
            state: Arc::new(Mutex::new(RunState {
                brain,
                used: BTreeSet::new(),
                missing: BTreeSet::new(),
                scratch: BTreeMap::new(),
                env,
                now,
            })),
        }
    }

    /// Takes the used and missing sets out (after a run).
    pub fn take_deps(&self) -> (BTreeSet<Dependency>, BTreeSet<Dependency>) {
        let mut s = lock(&self.state);
        (std::mem::take(&mut s.used), std::mem::take(&mut s.missing))
    }

    /// Records `dep` as used and returns its data, or records it as missing.
    fn recall(&self, dep: Dependency) -> Option<(Arc<crate::brain::Entry>, Dependency)> {
        let mut s = lock(&self.state);
        s.used.insert(dep.clone());
        match s.brain.entry(&dep).cloned() {
            Some(e) => Some((e, dep)),
            None => {
                s.missing.insert(dep);
                None
            }
        }
    }

    fn mark_missing(&self, dep: Dependency) {
        lock(&self.state).missing.insert(dep);
    }

    /// Calls the function `name` with Go-template argument order.
    pub fn call(&self, name: &str, args: &[Value]) -> FuncResult {
        let a = Args { name, args };
        match name {
            "service" | "connect" => {
                let parts = a.strs()?;
                if parts.first().is_none_or(|p| p.is_empty()) {
                    return Ok(list(vec![]));
                }
                let dep = Dependency::health_service(&parts.join("|"), name == "connect")
                    .map_err(|e| e.to_string())?;
                Ok(self.api_list(dep))
            }
            "catalogService" => {
                let parts = a.strs()?;
                if parts.first().is_none_or(|p| p.is_empty()) {
                    return Ok(list(vec![]));
                }
                let dep =
                    Dependency::catalog_service(&parts.join("")).map_err(|e| e.to_string())?;
                Ok(self.api_list(dep))
            }
            "services" => {
                let dep =
                    Dependency::catalog_services(&a.strs()?.join("")).map_err(|e| e.to_string())?;
                Ok(self.api_list(dep))
            }
            "nodes" => {
                let dep =
                    Dependency::catalog_nodes(&a.strs()?.join("")).map_err(|e| e.to_string())?;
                Ok(self.api_list(dep))
            }
            "node" => {
                let dep =
                    Dependency::catalog_node(&a.strs()?.join("")).map_err(|e| e.to_string())?;
                Ok(self
                    .recall(dep)
                    .map_or(Value::Nil, |(e, _)| e.value.clone()))
            }
            "datacenters" => {
                let ignore = match a.len() {
                    0 => false,
                    1 => match a.get(0) {
                        Value::Bool(b) => *b,
                        other => {
                            return Err(format!(
                                "wrong type for value; expected bool; got {}",
                                go_type(other)
                            ));
                        }
                    },
                    n => {
                        return Err(format!(
                            "datacenters: wrong number of arguments, expected 0 or 1, but got {n}"
                        ));
                    }
                };
                Ok(self.api_list(Dependency::Datacenters {
                    ignore_inaccessible: ignore,
                }))
            }
            "key" => {
                a.exact(1)?;
                let s = a.str(0)?;
                if s.is_empty() {
                    return Ok(string(""));
                }
                let dep = Dependency::key(s).map_err(|e| e.to_string())?;
                match self.recall(dep) {
                    Some((e, dep)) => match &e.data {
                        Data::Key(Some(v)) => Ok(string(v.as_str())),
                        // `key` blocks until the key exists (B.4.3).
                        _ => {
                            self.mark_missing(dep);
                            Ok(string(""))
                        }
                    },
                    None => Ok(string("")),
                }
            }
            "keyExists" => {
                a.exact(1)?;
                let s = a.str(0)?;
                if s.is_empty() {
                    return Ok(Value::Bool(false));
                }
                let dep = Dependency::key(s).map_err(|e| e.to_string())?;
                Ok(Value::Bool(self.recall(dep).is_some_and(|(e, _)| {
                    matches!(e.data, Data::Key(Some(_)))
                })))
            }
            "keyOrDefault" => {
                a.exact(2)?;
                let (s, def) = (a.str(0)?, a.str(1)?);
                if s.is_empty() {
                    return Ok(string(def));
                }
                let dep = Dependency::key(s).map_err(|e| e.to_string())?;
                Ok(match self.recall(dep) {
                    Some((e, _)) => match &e.data {
                        Data::Key(Some(v)) if !v.is_empty() => string(v.as_str()),
                        _ => string(def),
                    },
                    None => string(def),
                })
            }
            "ls" | "safeLs" | "tree" | "safeTree" => {
                a.exact(1)?;
                let s = a.str(0)?;
                if s.is_empty() {
                    return Ok(list(vec![]));
                }
                let dep = Dependency::key_prefix(s).map_err(|e| e.to_string())?;
                let Some((e, dep)) = self.recall(dep) else {
                    return Ok(list(vec![]));
                };
                let recursive = name.ends_with("ree");
                let pairs: Vec<Value> = match &e.value {
                    Value::List(l) => l
                        .iter()
                        .filter(|p| {
                            let key = field(p, "Key").as_str().unwrap_or("");
                            if recursive {
                                !key.ends_with('/') && !key.is_empty()
                            } else {
                                !key.is_empty() && !key.contains('/')
                            }
                        })
                        .cloned()
                        .collect(),
                    _ => Vec::new(),
                };
                if pairs.is_empty() && name.starts_with("safe") {
                    // An empty prefix keeps safeLs/safeTree from rendering (B.4.3).
                    self.mark_missing(dep);
                }
                Ok(list(pairs))
            }
            "file" => {
                a.exact(1)?;
                let s = a.str(0)?;
                if s.is_empty() {
                    return Ok(string(""));
                }
                let dep = Dependency::file(s).map_err(|e| e.to_string())?;
                Ok(self
                    .recall(dep)
                    .map_or(string(""), |(e, _)| e.value.clone()))
            }
            "scratch.Key" => {
                a.exact(1)?;
                let k = a.str(0)?;
                Ok(Value::Bool(lock(&self.state).scratch.contains_key(k)))
            }
            "scratch.Get" => {
                a.exact(1)?;
                let k = a.str(0)?;
                Ok(lock(&self.state)
                    .scratch
                    .get(k)
                    .cloned()
                    .unwrap_or(Value::Nil))
            }
            "scratch.Set" | "scratch.SetX" => {
                a.exact(2)?;
                let k = a.str(0)?;
                let mut s = lock(&self.state);
                if name == "scratch.Set" || !s.scratch.contains_key(k) {
                    s.scratch.insert(k.to_string(), a.get(1).clone());
                }
                Ok(string(""))
            }
            "scratch.MapSet" | "scratch.MapSetX" => {
                a.exact(3)?;
                let (k, mk) = (a.str(0)?, a.str(1)?);
                let mut s = lock(&self.state);
                let entry = s
                    .scratch
                    .entry(k.to_string())
                    .or_insert_with(|| Value::Map(Arc::default()));
                let Value::Map(m) = entry else {
                    return Err(format!("{k:?} is not a map"));
                };
                let m = Arc::make_mut(m);
                if name == "scratch.MapSet" || !m.contains_key(mk) {
                    m.insert(mk.into(), a.get(2).clone());
                }
                Ok(string(""))
            }
            "scratch.MapValues" => {
                a.exact(1)?;
                let k = a.str(0)?;
                Ok(match lock(&self.state).scratch.get(k) {
                    Some(Value::Map(m)) => list(m.values().cloned().collect()),
                    _ => Value::Nil,
                })
            }
            "env" | "mustEnv" | "envOrDefault" => {
                let env = lock(&self.state).env.clone();
                helpers::env(name, &a, &env)
            }
            "timestamp" => {
                let now = lock(&self.state).now;
                time::timestamp(&a, now)
            }
            "add" | "subtract" | "multiply" | "divide" | "modulo" | "minimum" | "maximum" => {
                a.exact(2)?;
                math::apply(name, a.get(0), a.get(1))
            }
            _ => helpers::call(name, &a),
        }
    }

    /// Common tail of list-returning API functions.
    fn api_list(&self, dep: Dependency) -> Value {
        self.recall(dep)
            .map_or_else(|| list(vec![]), |(e, _)| e.value.clone())
    }
}

#[cfg(test)]
mod tests;
