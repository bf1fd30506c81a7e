//! Tags: the `\,`-escaped comma list of `SERVICE_TAGS` / `-tags`, and the `-tags`
//! Go template that upstream master executes against the `docker inspect` object.
//!
//! The template is parsed once at start-up ([`TagsTemplate::parse`], so a syntax error
//! stops registrator before it touches anything) and rendered once per container
//! ([`TagsTemplate::render`]); the mapping then splits the text with [`parse_tags`].
//!
//! Template data is bollard's inspect model serialized with the Docker JSON names,
//! which are go-dockerclient's Go field names except `Id`: `.ID` is added as an alias.
//! Docker 29 dropped `NetworkSettings.IPAddress`; it is filled with the container IP
//! the mapping uses, so templates written for older engines keep working.
//!
//! Functions: upstream's `strSlice sIndex mIndex toUpper toLower replace join split
//! splitIndex matchFirstElement matchAllElements jsonParse`. `httpGet` is not offered
//! (a network call per registration does not belong in the pure mapping): using it is
//! an execution error.

use std::fmt;
use std::sync::Arc;

use bollard::models::ContainerInspectResponse;
use gotmpl::{Template, TemplateError, Value};

/// A `-tags` template that failed to parse or execute. Upstream makes both fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagsError {
    /// The template text is not a valid Go template.
    #[error("{source_text} template parsing failed with error: {message}")]
    Parse {
        /// The `-tags` value.
        source_text: String,
        /// The parser's message.
        message: String,
    },
    /// The template failed while rendering a container.
    #[error("{source_text} template execution failed with error: {message}")]
    Exec {
        /// The `-tags` value.
        source_text: String,
        /// The executor's message.
        message: String,
    },
}

/// The parsed `-tags` flag. Empty means no forced tags; text without `{{` is used as is.
#[derive(Clone, Default)]
pub struct TagsTemplate {
    source: String,
    /// `None` when the text has no action: rendering it would be the identity.
    template: Option<Arc<Template>>,
}

impl fmt::Debug for TagsTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TagsTemplate").field(&self.source).finish()
    }
}

impl PartialEq for TagsTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl TagsTemplate {
    /// Parses the `-tags` value with upstream's extra functions registered.
    pub fn parse(source: &str) -> Result<Self, TagsError> {
        if !source.contains("{{") {
            return Ok(Self {
                source: source.to_string(),
                template: None,
            });
        }
        let template = with_functions(Template::new("tags"))
            .parse(source)
            .map_err(|e| TagsError::Parse {
                source_text: source.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            source: source.to_string(),
            template: Some(Arc::new(template)),
        })
    }

    /// The flag value as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when `-tags` was not given (or empty).
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Renders the template for one container; `container_ip` fills the
    /// `NetworkSettings.IPAddress` field Docker 29 no longer reports.
    pub fn render(
        &self,
        container: &ContainerInspectResponse,
        container_ip: &str,
    ) -> Result<String, TagsError> {
        let Some(template) = &self.template else {
            return Ok(self.source.clone());
        };
        let exec_err = |e: TemplateError| TagsError::Exec {
            source_text: self.source.clone(),
            message: e.to_string(),
        };
        let data = template_data(container, container_ip).map_err(exec_err)?;
        template.execute_to_string(&data).map_err(exec_err)
    }
}

/// Splits a tag list on commas; `\,` is a literal comma, empty tags are dropped and
/// nothing is trimmed, as upstream's `recParseEscapedComma`.
///
/// Upstream master emits each comma group in reverse order (its recursive splitter
/// appends the head after the tail); tags are kept in the written order here.
pub fn parse_tags(text: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            ',' => {
                if !current.is_empty() {
                    tags.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        tags.push(current);
    }
    tags
}

/// The inspect object as template data, with the Go-name aliases described above.
fn template_data(
    container: &ContainerInspectResponse,
    container_ip: &str,
) -> Result<Value, TemplateError> {
    let Value::Map(root) = gotmpl::to_value(container)? else {
        return Ok(Value::Nil);
    };
    let mut root = (*root).clone();
    if let Some(id) = root.get("Id").cloned() {
        root.insert("ID".into(), id);
    }
    if let Some(Value::Map(settings)) = root.get("NetworkSettings") {
        let mut settings = (**settings).clone();
        settings
            .entry("IPAddress".into())
            .or_insert_with(|| Value::String(container_ip.into()));
        root.insert("NetworkSettings".into(), Value::Map(Arc::new(settings)));
    }
    Ok(Value::Map(Arc::new(root)))
}

type FnResult = Result<Value, TemplateError>;

/// Registers upstream's `-tags` function map.
fn with_functions(template: Template) -> Template {
    template
        .func("strSlice", str_slice)
        .func("sIndex", |a| {
            arity("sIndex", a, 2)?;
            pick(int(a, 0)?, &strings(&a[1])?)
        })
        .func("mIndex", |a| {
            arity("mIndex", a, 2)?;
            let key = string(a, 0)?;
            Ok(match &a[1] {
                Value::Map(m) => m.get(key.as_str()).cloned().unwrap_or(str_value("")),
                Value::Nil => str_value(""),
                other => return Err(type_mismatch("map", other)),
            })
        })
        .func("toUpper", |a| {
            arity("toUpper", a, 1)?;
            Ok(str_value(&string(a, 0)?.to_uppercase()))
        })
        .func("toLower", |a| {
            arity("toLower", a, 1)?;
            Ok(str_value(&string(a, 0)?.to_lowercase()))
        })
        .func("replace", |a| {
            arity("replace", a, 4)?;
            let (n, old, new, text) = (int(a, 0)?, string(a, 1)?, string(a, 2)?, string(a, 3)?);
            Ok(str_value(&match usize::try_from(n) {
                Ok(n) => text.replacen(&old, &new, n),
                Err(_) => text.replace(&old, &new),
            }))
        })
        .func("join", |a| {
            arity("join", a, 2)?;
            Ok(str_value(&strings(&a[1])?.join(&string(a, 0)?)))
        })
        .func("split", |a| {
            arity("split", a, 2)?;
            Ok(list_value(go_split(&string(a, 1)?, &string(a, 0)?)))
        })
        .func("splitIndex", |a| {
            arity("splitIndex", a, 3)?;
            pick(int(a, 0)?, &go_split(&string(a, 2)?, &string(a, 1)?))
        })
        .func("matchFirstElement", |a| {
            arity("matchFirstElement", a, 2)?;
            let re = regex(&string(a, 0)?)?;
            let first = strings(&a[1])?.into_iter().find(|e| re.is_match(e));
            Ok(str_value(&first.unwrap_or_default()))
        })
        .func("matchAllElements", |a| {
            arity("matchAllElements", a, 2)?;
            let re = regex(&string(a, 0)?)?;
            let all = strings(&a[1])?.into_iter().filter(|e| re.is_match(e));
            Ok(list_value(all.collect()))
        })
        .func("jsonParse", |a| {
            arity("jsonParse", a, 2)?;
            Ok(str_value(&json_parse(&string(a, 0)?, &string(a, 1)?)))
        })
        .func("httpGet", |_| {
            Err(TemplateError::Exec(
                "httpGet is not supported by this registrator".to_string(),
            ))
        })
}

/// `strSlice s start [end]`, with upstream's clamping rules (byte offsets, as Go).
fn str_slice(a: &[Value]) -> FnResult {
    if a.is_empty() || a.len() > 3 {
        return Err(TemplateError::Exec(format!(
            "wrong number of args for strSlice: want 2 or 3 got {}",
            a.len()
        )));
    }
    let text = string(a, 0)?;
    let len = text.len() as i64;
    let range = match a.len() {
        2 => {
            let start = int(a, 1)?;
            (len >= start).then_some((start, len))
        }
        3 => {
            let (start, end) = (int(a, 1)?, int(a, 2)?);
            if len >= start && len >= end {
                Some(if start == 0 {
                    (0, end)
                } else if end < start {
                    (start, len)
                } else {
                    (start, end)
                })
            } else {
                None
            }
        }
        _ => None,
    };
    let Some((start, end)) = range else {
        return Ok(str_value(&text));
    };
    // Go panics on a negative bound; the template then fails, so does this.
    let slice = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| text.get(s..e))
        .ok_or(TemplateError::IndexOutOfRange {
            index: start.min(end),
        })?;
    Ok(str_value(slice))
}

/// `sIndex`/`splitIndex`: negative counts from the end; out-of-range indexes clamp.
fn pick(index: i64, items: &[String]) -> FnResult {
    if items.is_empty() {
        return Err(TemplateError::IndexOutOfRange { index });
    }
    let last = items.len() - 1;
    let at = if index < 0 {
        let back = index.unsigned_abs() as usize;
        if back >= items.len() {
            0
        } else {
            items.len() - back
        }
    } else {
        (index as usize).min(last)
    };
    Ok(str_value(&items[at]))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn go_split(text: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        text.chars().map(String::from).collect()
    } else {
        text.split(sep).map(String::from).collect()
    }
}

/// `jsonParse json "a::b"`: the value at that key path, strings unquoted, others as
/// JSON; empty when the text is not JSON or the path is missing (upstream logs then).
fn json_parse(json: &str, path: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
        return String::new();
    };
    for key in path.split("::") {
        match value.get_mut(key) {
            Some(v) => value = v.take(),
            None => return String::new(),
        }
    }
    match value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn arity(name: &str, args: &[Value], want: usize) -> Result<(), TemplateError> {
    if args.len() == want {
        Ok(())
    } else {
        Err(TemplateError::ArgCount {
            name: name.to_string(),
            expected: want,
            got: args.len(),
        })
    }
}

fn string(args: &[Value], at: usize) -> Result<String, TemplateError> {
    match &args[at] {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(type_mismatch("string", other)),
    }
}

fn int(args: &[Value], at: usize) -> Result<i64, TemplateError> {
    match &args[at] {
        Value::Int(n) => Ok(*n),
        Value::Uint(n) => i64::try_from(*n).map_err(|_| type_mismatch("int", &args[at])),
        other => Err(type_mismatch("int", other)),
    }
}

/// A `[]string` argument: a list (items printed Go-style) or nil (an unset slice).
fn strings(value: &Value) -> Result<Vec<String>, TemplateError> {
    match value {
        Value::List(items) => Ok(items.iter().map(ToString::to_string).collect()),
        Value::Nil => Ok(Vec::new()),
        other => Err(type_mismatch("list", other)),
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, TemplateError> {
    regex::Regex::new(pattern)
        .map_err(|e| TemplateError::Exec(format!("bad regular expression {pattern:?}: {e}")))
}

fn type_mismatch(expected: &'static str, got: &Value) -> TemplateError {
    TemplateError::TypeMismatch {
        expected,
        got: got.type_name(),
    }
}

fn str_value(s: &str) -> Value {
    Value::String(s.into())
}

fn list_value(items: Vec<String>) -> Value {
    Value::List(items.into_iter().map(|s| Value::String(s.into())).collect())
}

#[cfg(test)]
mod tests;
