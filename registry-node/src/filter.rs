//! Consul's `?filter=` expressions (the go-bexpr subset Consul documents).
//!
//! List endpoints (`/v1/health/service/:name`, `/v1/catalog/service/:name`,
//! `/v1/agent/services`, …) read their result from the store, then call
//! [`apply`] / [`apply_map`] with the raw `filter` query parameter before
//! encoding the body. The HTTP layer turns a [`FilterError`] into a 400 whose
//! body is the error's `Display` (it already carries Consul's
//! `Failed to create boolean expression evaluator:` prefix).
//!
//! Unlike go-bexpr, which walks Go structs by reflection, this module works on
//! the item's `serde_json` form, so it is pure and knows no endpoint types:
//! a selector is a path through the JSON the client would see.
//!
//! # Semantics
//! - `Sel == v` / `Sel != v` compare a scalar with the value's text: a number
//!   field matches `Port == 8080` and `Port == "8080"`; a bool field matches
//!   `true`, `"true"`, `1`, `t`, … (Go's `strconv.ParseBool`).
//! - `"v" in Sel` / `Sel contains "v"` test membership in an array, key
//!   presence in an object, or a substring of a string.
//! - `Sel matches "re"` runs an unanchored regex on a string (or a scalar's
//!   text). Patterns compile at parse time.
//! - `Sel is empty` holds for a missing key, `null`, `""`, `[]` and `{}`.
//! - A path that crosses an array (`Checks.Status`) tests every element and is
//!   true if **any** element satisfies the matcher *as written*: like go-bexpr,
//!   `Checks.Status != "passing"` means "some check is not passing"; write
//!   `not Checks.Status == "critical"` for "no check is critical". Crossing an
//!   empty array matches nothing, whatever the operator.
//! - The first segment of every selector must be a field of the item (when
//!   the item is an object), else `Selector "Foo" is not valid`. Deeper
//!   missing keys are simply empty, as Go's map lookups are.

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// A parsed `?filter=` expression, ready to test items.
///
/// Parse once per request and reuse it for every item; it is cheap to clone
/// and `Send + Sync` (regexes are compiled up front).
#[derive(Debug, Clone)]
pub struct Filter {
    /// The expression as the client sent it (for logs and `Display`).
    source: String,
    /// The boolean tree.
    expr: Expr,
    /// The selectors used anywhere in `expr`, checked against every item before
    /// evaluation so a bad selector fails even where `and`/`or` short-circuit.
    selectors: Vec<Selector>,
    /// Top-level fields accepted even when an item does not carry them: fields
    /// the wire type omits when empty (`skip_serializing_if`).
    optional_fields: Vec<String>,
}

/// Why a filter could not be parsed or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The expression is not valid go-bexpr syntax.
    #[error("Failed to create boolean expression evaluator: {line}:{column} ({offset}): {message}")]
    Syntax {
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// Byte offset of the offending token.
        offset: usize,
        /// What was expected or found.
        message: String,
    },
    /// A selector's first segment is not a field of the filtered items.
    #[error("Failed to create boolean expression evaluator: Selector {selector:?} is not valid")]
    InvalidSelector {
        /// The selector as written.
        selector: String,
    },
    /// The pattern of a `matches` operator does not compile.
    #[error(
        "Failed to create boolean expression evaluator: Failed to compile regular expression {pattern:?}: {message}"
    )]
    InvalidRegex {
        /// The pattern as written (after unquoting).
        pattern: String,
        /// The regex engine's complaint.
        message: String,
    },
    /// An item could not be turned into JSON (a bug in a wire type, not the
    /// client's fault).
    #[error("failed to encode item for filtering: {message}")]
    Encode {
        /// The serializer's complaint.
        message: String,
    },
}

impl FilterError {
    /// True when the client sent a bad expression (HTTP 400); false for
    /// [`FilterError::Encode`], which is a server bug (HTTP 500).
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, FilterError::Encode { .. })
    }

    /// True for a syntax error.
    pub fn is_syntax(&self) -> bool {
        matches!(self, FilterError::Syntax { .. })
    }

    /// True for an unknown top-level selector.
    pub fn is_invalid_selector(&self) -> bool {
        matches!(self, FilterError::InvalidSelector { .. })
    }
}

impl Filter {
    /// Parses a go-bexpr expression such as
    /// `Service.Meta.env == "prod" and "primary" in Service.Tags`.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        let tree = parse::parse(expr)?;
        let mut selectors = Vec::new();
        tree.collect_selectors(&mut selectors);
        Ok(Filter {
            source: expr.to_string(),
            expr: tree,
            selectors,
            optional_fields: Vec::new(),
        })
    }

    /// Declares top-level fields that are valid selectors even when an item
    /// omits them, e.g. `Kind` of `/v1/agent/services`, which the wire type
    /// skips when empty. Such an absent field reads as empty.
    pub fn with_optional_fields(mut self, fields: &[&str]) -> Filter {
        self.optional_fields
            .extend(fields.iter().map(|f| f.to_string()));
        self
    }

    /// The expression as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Tests one item (the JSON form of a list element or map value).
    ///
    /// Fails only when a selector's first segment is not a field of `item`.
    pub fn matches(&self, item: &Value) -> Result<bool, FilterError> {
        if let Value::Object(fields) = item {
            for selector in &self.selectors {
                let root = &selector.segments[0].name;
                if !fields.contains_key(root) && !self.optional_fields.iter().any(|f| f == root) {
                    return Err(FilterError::InvalidSelector {
                        selector: selector.text.clone(),
                    });
                }
            }
        }
        Ok(self.expr.eval(item))
    }

    /// Keeps the items that match, in order.
    pub fn apply<T: Serialize>(&self, items: Vec<T>) -> Result<Vec<T>, FilterError> {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if self.matches(&to_json(&item)?)? {
                kept.push(item);
            }
        }
        Ok(kept)
    }

    /// Keeps the entries whose value matches (objects keyed by ID, such as
    /// `/v1/agent/services`); keys are not visible to the expression.
    pub fn apply_map<T: Serialize>(
        &self,
        items: BTreeMap<String, T>,
    ) -> Result<BTreeMap<String, T>, FilterError> {
        let mut kept = BTreeMap::new();
        for (key, item) in items {
            if self.matches(&to_json(&item)?)? {
                kept.insert(key, item);
            }
        }
        Ok(kept)
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(expr: &str) -> Result<Filter, FilterError> {
        Filter::parse(expr)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Fields the wire types omit when empty; a filter naming them is still valid.
pub const OPTIONAL_FIELDS: &[&str] = &[
    "Kind",
    "TaggedAddresses",
    "ServiceTaggedAddresses",
    "ContentHash",
    "SocketPath",
    "Session",
];

/// Parses a `?filter=` expression that is evaluated against the API wire types.
pub fn parse_for_api(expr: &str) -> Result<Filter, FilterError> {
    Ok(Filter::parse(expr)?.with_optional_fields(OPTIONAL_FIELDS))
}

/// Filters a list with the raw `?filter=` parameter. `None` and `Some("")`
/// keep everything, as Consul ignores an empty filter.
pub fn apply<T: Serialize>(filter: Option<&str>, items: Vec<T>) -> Result<Vec<T>, FilterError> {
    match filter {
        Some(expr) if !expr.is_empty() => parse_for_api(expr)?.apply(items),
        _ => Ok(items),
    }
}

/// Filters an object keyed by ID with the raw `?filter=` parameter; `None` and
/// `Some("")` keep everything.
pub fn apply_map<T: Serialize>(
    filter: Option<&str>,
    items: BTreeMap<String, T>,
) -> Result<BTreeMap<String, T>, FilterError> {
    match filter {
        Some(expr) if !expr.is_empty() => parse_for_api(expr)?.apply_map(items),
        _ => Ok(items),
    }
}

fn to_json<T: Serialize>(item: &T) -> Result<Value, FilterError> {
    serde_json::to_value(item).map_err(|e| FilterError::Encode {
        message: e.to_string(),
    })
}

/// The boolean tree. `and`/`or` chains are flat vectors so that a long chain
/// does not turn into deep recursion; only parentheses and `not` nest, and the
/// parser caps that depth.
#[derive(Debug, Clone)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Match(Matcher),
}

impl Expr {
    fn eval(&self, item: &Value) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|t| t.eval(item)),
            Expr::And(terms) => terms.iter().all(|t| t.eval(item)),
            Expr::Not(inner) => !inner.eval(item),
            Expr::Match(m) => m.eval(item),
        }
    }

    fn collect_selectors(&self, out: &mut Vec<Selector>) {
        match self {
            Expr::Or(terms) | Expr::And(terms) => {
                terms.iter().for_each(|t| t.collect_selectors(out));
            }
            Expr::Not(inner) => inner.collect_selectors(out),
            Expr::Match(m) => out.push(m.selector.clone()),
        }
    }
}

/// One matching expression: a selector, an operator and its negation flag.
#[derive(Debug, Clone)]
struct Matcher {
    selector: Selector,
    op: Op,
    /// `!=`, `not in`, `not contains`, `is not empty`, `not matches`. Applied
    /// per array element before the any-element rule, as go-bexpr does.
    negated: bool,
}

/// The positive form of an operator; `contains` and `in` are the same test.
#[derive(Debug, Clone)]
enum Op {
    Equal(String),
    IsEmpty,
    In(String),
    Matches(Regex),
}

/// A dotted path such as `Service.Meta["weird-key"]`.
#[derive(Debug, Clone)]
struct Selector {
    /// The selector as written, for error messages.
    text: String,
    /// Never empty: the parser always reads a first identifier.
    segments: Vec<Segment>,
}

/// One step of a selector.
#[derive(Debug, Clone)]
struct Segment {
    /// Field or map key.
    name: String,
    /// Set for a numeric `.N` segment, which indexes an array instead of
    /// fanning out over it.
    index: Option<usize>,
}

impl Matcher {
    fn eval(&self, item: &Value) -> bool {
        any_leaf(item, &self.selector.segments, &mut |leaf| {
            self.op.test(leaf) != self.negated
        })
    }
}

/// Walks `segments` from `value` and calls `test` on every value reached
/// (`None` for a missing key), stopping at the first `true`. Arrays met
/// before the path ends are crossed element by element.
fn any_leaf(
    value: &Value,
    segments: &[Segment],
    test: &mut dyn FnMut(Option<&Value>) -> bool,
) -> bool {
    let Some((segment, rest)) = segments.split_first() else {
        return test(Some(value));
    };
    match value {
        Value::Object(fields) => match fields.get(&segment.name) {
            Some(next) => any_leaf(next, rest, test),
            None => test(None),
        },
        Value::Array(elements) => match segment.index {
            Some(i) => match elements.get(i) {
                Some(next) => any_leaf(next, rest, test),
                None => test(None),
            },
            None => elements.iter().any(|e| any_leaf(e, segments, test)),
        },
        // A scalar or null has no fields: whatever lies below it is missing.
        _ => test(None),
    }
}

impl Op {
    /// The positive test on one leaf; `None` and `null` both mean "missing".
    fn test(&self, leaf: Option<&Value>) -> bool {
        let leaf = leaf.filter(|v| !v.is_null());
        match self {
            Op::Equal(want) => leaf.is_some_and(|v| scalar_eq(v, want)),
            Op::IsEmpty => match leaf {
                None => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(_) => false,
            },
            Op::In(want) => match leaf {
                Some(Value::String(s)) => s.contains(want.as_str()),
                Some(Value::Array(a)) => a.iter().any(|e| scalar_eq(e, want)),
                Some(Value::Object(o)) => o.contains_key(want),
                _ => false,
            },
            Op::Matches(re) => match leaf {
                Some(Value::String(s)) => re.is_match(s),
                Some(Value::Number(n)) => re.is_match(&n.to_string()),
                Some(Value::Bool(b)) => re.is_match(if *b { "true" } else { "false" }),
                _ => false,
            },
        }
    }
}

/// Compares a JSON scalar with a literal's text, coercing the text to the
/// scalar's type the way go-bexpr coerces to the Go field's kind. Objects and
/// arrays equal nothing.
fn scalar_eq(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s == text,
        Value::Bool(b) => parse_go_bool(text) == Some(*b),
        Value::Number(n) => {
            // Integers first: indexes are u64 and lose precision as f64.
            if let (Some(a), Ok(b)) = (n.as_u64(), text.parse::<u64>()) {
                return a == b;
            }
            if let (Some(a), Ok(b)) = (n.as_i64(), text.parse::<i64>()) {
                return a == b;
            }
            matches!((n.as_f64(), text.parse::<f64>()), (Some(a), Ok(b)) if a == b)
        }
        _ => false,
    }
}

/// Go's `strconv.ParseBool` spellings.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
