//! The Go `text/template` dialect (`.ctmpl`), on the `gotmpl` crate.
//!
//! The source is parsed once into gotmpl's AST, which we then rewrite for
//! what gotmpl does not do itself:
//! * **method calls on `scratch`**: `scratch.Set "k" v` parses as a call of
//!   `scratch` whose result's field `Set` is read; we turn it into a call of
//!   the function `scratch.Set` (gotmpl has no methods, see its README);
//! * **typed string maps**: consul-template's `.ServiceMeta`, `.NodeMeta`,
//!   `.Meta`, `.TaggedAddresses`, `.NodeTaggedAddresses` are Go
//!   `map[string]string`, so with `missingkey=zero` a missing key prints ""
//!   (gotmpl's untyped maps print `<no value>`). `.X.Meta.k` and
//!   `index .X.Meta "k"` on those field names become a lookup returning "";
//! * **undefined functions** are reported at parse time with file and line,
//!   as Go does (gotmpl defers them to execution).
//!
//! Every render builds a fresh gotmpl `Template` from the rewritten trees,
//! with the function closures bound to that render's [`Funcs`].

use std::sync::{Arc, OnceLock, Weak};

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, Parser, PipeNode, SmolStr};
use gotmpl::{MissingKey, TemplateError};

use crate::error::Error;
use crate::funcs::{self, Funcs};
use crate::value::Value;

/// Go's built-in template functions.
const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js",
    "urlquery", "eq", "ne", "lt", "le", "gt", "ge", "call",
];

/// Field names that are `map[string]string` in consul-template's types.
const STRING_MAPS: &[&str] = &[
    "ServiceMeta",
    "NodeMeta",
    "Meta",
    "TaggedAddresses",
    "NodeTaggedAddresses",
];

/// Internal function names introduced by the rewrite.
const STRMAP_FIELD: &str = "__strmap_field";
const STRMAP_INDEX: &str = "__strmap_index";
const MAIN: &str = "__main__";

/// A parsed and rewritten Go template.
pub struct GoTemplate {
    name: String,
    main: ListNode,
    defines: Vec<(String, ListNode)>,
    missing_key_error: bool,
}

impl GoTemplate {
    /// Parses `src` with the given delimiters; `name` (the file) prefixes errors.
    pub fn parse(
        name: &str,
        src: &str,
        left: &str,
        right: &str,
        missing_key_error: bool,
    ) -> Result<Self, Error> {
        let left = if left.is_empty() { "{{" } else { left };
        let right = if right.is_empty() { "}}" } else { right };
        let parser =
            Parser::with_name(Some(name), src, left, right).map_err(|e| parse_err(name, e))?;
        let (mut main, defines) = parser.parse().map_err(|e| parse_err(name, e))?;
        check_stray_end(name, src, left, right)?;
        let mut rw = Rewriter { name, error: None };
        rw.list(&mut main);
        let mut defs = Vec::new();
        for d in defines {
            let mut body = d.body;
            rw.list(&mut body);
            defs.push((d.name.to_string(), body));
        }
        if let Some(e) = rw.error {
            return Err(e);
        }
        Ok(GoTemplate {
            name: name.to_string(),
            main,
            defines: defs,
            missing_key_error,
        })
    }

    /// Executes with dot = nil; function calls go to `funcs`.
    pub fn execute(&self, funcs: &Funcs) -> Result<String, Error> {
        let mut map = gotmpl::FuncMap::new();
        for &name in funcs::NAMES {
            let f = funcs.clone();
            map.insert(
                name.to_string(),
                Arc::new(move |args: &[Value]| {
                    f.call(name, args)
                        .map_err(|e| TemplateError::Exec(format!("error calling {name}: {e}")))
                }),
            );
        }
        let mke = self.missing_key_error;
        map.insert(
            STRMAP_FIELD.into(),
            Arc::new(move |args: &[Value]| strmap_get(args, mke, true)),
        );
        map.insert(
            STRMAP_INDEX.into(),
            Arc::new(move |args: &[Value]| strmap_get(args, false, false)),
        );
        // scratch without a method: a value that exists (`{{ if scratch }}`).
        map.insert(
            "scratch".into(),
            Arc::new(|_: &[Value]| Ok(Value::String("".into()))),
        );
        // executeTemplate needs the template being built: a weak back-reference.
        let slot: Arc<OnceLock<Weak<gotmpl::Template>>> = Arc::new(OnceLock::new());
        let back = slot.clone();
        map.insert(
            "executeTemplate".into(),
            Arc::new(move |args: &[Value]| {
                let err = |m: String| TemplateError::Exec(format!("error calling executeTemplate: {m}"));
                let name = match args.first() {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(err("wrong type for value; expected string".into())),
                };
                let dot = match args.len() {
                    1 => Value::Nil,
                    2 => args[1].clone(),
                    n => {
                        return Err(err(format!(
                            "executeTemplate: wrong number of arguments, expected 1 or 2, but got {n}"
                        )));
                    }
                };
                let t = back
                    .get()
                    .and_then(Weak::upgrade)
                    .ok_or_else(|| err("template is gone".into()))?;
                t.execute_template_to_string(&name, &dot)
                    .map(|s| Value::String(s.into()))
            }),
        );
        let mut t = gotmpl::Template::new(&self.name)
            .missing_key(if self.missing_key_error {
                MissingKey::Error
            } else {
                MissingKey::ZeroValue
            })
            .funcs(map)
            .add_parse_tree(MAIN, self.main.clone());
        for (name, body) in &self.defines {
            t = t.add_parse_tree(name, body.clone());
        }
        let t = Arc::new(t);
        let _ = slot.set(Arc::downgrade(&t));
        t.execute_template_to_string(MAIN, &Value::Nil)
            .map_err(|e| Error::Execute {
                template: self.name.clone(),
                message: e
                    .to_string()
                    .trim_start_matches("execution error: ")
                    .to_string(),
            })
    }
}

/// gotmpl 0.6.1 stops parsing silently at a top-level `{{end}}` and drops
/// the rest of the template; Go reports `unexpected {{end}}`. We re-parse
/// inside `{{if true}}...{{end}}` followed by a sentinel text: the sentinel
/// is the last node unless a stray `end` closed the wrapper early.
fn check_stray_end(name: &str, src: &str, left: &str, right: &str) -> Result<(), Error> {
    const SENTINEL: &str = "\u{0}templater-end-check";
    let wrapped = format!("{left}if true{right}{src}{left}end{right}{SENTINEL}");
    let Ok((tree, _)) = Parser::new(&wrapped, left, right).and_then(Parser::parse) else {
        return Ok(());
    };
    if matches!(tree.nodes.last(), Some(Node::Text(t)) if t.text.ends_with(SENTINEL)) {
        return Ok(());
    }
    // The first node after the wrapper starts right after the stray `end`.
    let line = match tree.nodes.get(1) {
        Some(n) => {
            let offset = node_offset(n).min(wrapped.len());
            1 + wrapped.as_bytes()[..offset]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
        }
        None => src.lines().count().max(1),
    };
    Err(Error::Parse {
        template: name.to_string(),
        line,
        col: 0,
        message: "unexpected {{end}}".into(),
    })
}

fn node_offset(n: &Node) -> usize {
    match n {
        Node::List(l) => l.pos.offset,
        Node::Text(t) => t.pos.offset,
        Node::Action(a) => a.pos.offset,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos.offset,
        Node::Template(t) => t.pos.offset,
        Node::Define(d) => d.pos.offset,
        Node::Break(p) | Node::Continue(p) => p.offset,
    }
}

fn parse_err(name: &str, e: TemplateError) -> Error {
    match e {
        TemplateError::Parse {
            line, col, message, ..
        }
        | TemplateError::Lex {
            line, col, message, ..
        } => Error::Parse {
            template: name.to_string(),
            line,
            col,
            message,
        },
        other => Error::Parse {
            template: name.to_string(),
            line: 0,
            col: 0,
            message: other.to_string(),
        },
    }
}

/// `m.k` / `index m k` on a Go `map[string]string`: "" when missing.
fn strmap_get(args: &[Value], missing_key_error: bool, is_field: bool) -> gotmpl::Result<Value> {
    let (m, k) = match args {
        [m, Value::String(k)] => (m, k),
        _ => return Err(TemplateError::Exec("index: bad arguments".into())),
    };
    match m {
        Value::Map(map) => match map.get(k.as_ref()) {
            Some(v) => Ok(v.clone()),
            None if missing_key_error && is_field => {
                Err(TemplateError::MissingKey { key: k.to_string() })
            }
            None => Ok(Value::String("".into())),
        },
        Value::Nil => Ok(Value::String("".into())),
        other if is_field => Err(TemplateError::Exec(format!(
            "can't evaluate field {k} in type {}",
            other.type_name()
        ))),
        other => Err(TemplateError::Exec(format!(
            "error calling index: cannot index slice/array with type string ({})",
            other.type_name()
        ))),
    }
}

struct Rewriter<'a> {
    name: &'a str,
    error: Option<Error>,
}

impl Rewriter<'_> {
    fn list(&mut self, l: &mut ListNode) {
        for n in &mut l.nodes {
            self.node(n);
        }
    }

    fn node(&mut self, n: &mut Node) {
        match n {
            Node::List(l) => self.list(l),
            Node::Action(a) => self.pipe(&mut a.pipe),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                self.pipe(&mut b.pipe);
                self.list(&mut b.body);
                if let Some(e) = &mut b.else_body {
                    self.list(e);
                }
            }
            Node::Template(t) => {
                if let Some(p) = &mut t.pipe {
                    self.pipe(p);
                }
            }
            Node::Define(d) => self.list(&mut d.body),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }

    fn pipe(&mut self, p: &mut PipeNode) {
        for c in &mut p.commands {
            self.command(c);
        }
    }

    fn command(&mut self, c: &mut CommandNode) {
        // scratch.Method args... -> "scratch.Method" args...
        if let Some(Expr::Chain(pos, inner, fields)) = c.args.first()
            && let Expr::Identifier(_, id) = inner.as_ref()
            && id.as_str() == "scratch"
            && fields.len() == 1
        {
            let name = format!("scratch.{}", fields[0]);
            c.args[0] = Expr::Identifier(*pos, SmolStr::new(name));
        }
        // index <string map> "k" -> __strmap_index <string map> "k"
        if c.args.len() == 3
            && matches!(&c.args[0], Expr::Identifier(_, id) if id.as_str() == "index")
            && last_field(&c.args[1]).is_some_and(|f| STRING_MAPS.contains(&f))
            && let Expr::Identifier(pos, _) = &c.args[0]
        {
            c.args[0] = Expr::Identifier(*pos, SmolStr::new(STRMAP_INDEX));
        }
        if let Some(Expr::Identifier(pos, id)) = c.args.first() {
            self.check_func(*pos, id);
        }
        for a in &mut c.args {
            self.expr(a);
        }
    }

    fn check_func(&mut self, pos: gotmpl::parse::Pos, id: &str) {
        let known = BUILTINS.contains(&id)
            || funcs::NAMES.contains(&id)
            || matches!(
                id,
                "scratch" | "executeTemplate" | STRMAP_INDEX | STRMAP_FIELD
            );
        if !known && self.error.is_none() {
            self.error = Some(Error::Parse {
                template: self.name.to_string(),
                line: pos.line,
                col: 0,
                message: format!("function {id:?} not defined"),
            });
        }
    }

    fn expr(&mut self, e: &mut Expr) {
        match e {
            Expr::Pipe(_, p) => self.pipe(p),
            Expr::Chain(_, inner, _) => self.expr(inner),
            Expr::Identifier(pos, id) => {
                let (pos, id) = (*pos, id.clone());
                self.check_func(pos, &id);
            }
            _ => {}
        }
        // X.<StringMap>.key -> (__strmap_field X.<StringMap> "key")
        let split = match e {
            Expr::Field(_, f) | Expr::Variable(_, _, f) | Expr::Chain(_, _, f) => {
                f.len() >= 2 && STRING_MAPS.contains(&f[f.len() - 2].as_str())
            }
            _ => false,
        };
        if split {
            let pos = e.pos();
            let (base, key) = match e.clone() {
                Expr::Field(p, mut f) => {
                    let k = f.pop();
                    (Expr::Field(p, f), k)
                }
                Expr::Variable(p, n, mut f) => {
                    let k = f.pop();
                    (Expr::Variable(p, n, f), k)
                }
                Expr::Chain(p, inner, mut f) => {
                    let k = f.pop();
                    (Expr::Chain(p, inner, f), k)
                }
                other => (other, None),
            };
            if let Some(key) = key {
                *e = Expr::Pipe(
                    pos,
                    PipeNode {
                        pos,
                        decl: Vec::new(),
                        commands: vec![CommandNode {
                            pos,
                            args: vec![
                                Expr::Identifier(pos, SmolStr::new(STRMAP_FIELD)),
                                base,
                                Expr::String(pos, key.as_str().into()),
                            ],
                        }],
                        is_assign: false,
                    },
                );
            }
        }
    }
}

/// The last field name of a field/variable/chain expression.
fn last_field(e: &Expr) -> Option<&str> {
    match e {
        Expr::Field(_, f) | Expr::Variable(_, _, f) | Expr::Chain(_, _, f) => {
            f.last().map(SmolStr::as_str)
        }
        _ => None,
    }
}
