//! Rendering: one pass of a template over a brain snapshot.
//!
//! A pass records which dependencies the template used and which of them had
//! no data; the output counts only when nothing is missing. The caller (the
//! runner) adds newly used dependencies to the watcher and renders again when
//! data arrives — nested lookups like `range services` → `service .Name`
//! need two or more passes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use crate::brain::Brain;
use crate::dependency::Dependency;
use crate::error::Error;
use crate::funcs::Funcs;
use crate::gotemplate::GoTemplate;
use crate::handlebars::HbsTemplate;

/// Which template language a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Go `text/template`, consul-template compatible (`.ctmpl`, the default).
    #[default]
    Go,
    /// Handlebars (`.hbs`).
    Handlebars,
}

impl Dialect {
    /// `Handlebars` for `*.hbs` / `*.handlebars` paths, else `Go`.
    pub fn from_path(path: &str) -> Dialect {
        if path.ends_with(".hbs") || path.ends_with(".handlebars") {
            Dialect::Handlebars
        } else {
            Dialect::Go
        }
    }
}

/// How to parse a template.
#[derive(Debug, Clone, Default)]
pub struct TemplateOptions {
    /// Language.
    pub dialect: Dialect,
    /// Left delimiter ("" = `{{`; Go dialect only).
    pub left_delim: String,
    /// Right delimiter ("" = `}}`; Go dialect only).
    pub right_delim: String,
    /// `error_on_missing_key`: `missingkey=error` instead of zero values.
    pub error_on_missing_key: bool,
}

enum Engine {
    Go(GoTemplate),
    Handlebars(HbsTemplate),
}

/// A parsed template (parse once, render many times).
pub struct Template {
    name: String,
    engine: Engine,
}

impl Template {
    /// Parses `source`; `name` (usually the source path) names it in errors.
    pub fn parse(name: &str, source: &str, opts: &TemplateOptions) -> Result<Template, Error> {
        let engine = match opts.dialect {
            Dialect::Go => Engine::Go(GoTemplate::parse(
                name,
                source,
                &opts.left_delim,
                &opts.right_delim,
                opts.error_on_missing_key,
            )?),
            Dialect::Handlebars => Engine::Handlebars(HbsTemplate::parse(name, source)?),
        };
        Ok(Template {
            name: name.to_string(),
            engine,
        })
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Per-render inputs besides the brain.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// Extra environment for `env` (the command environment), looked up
    /// before the process environment.
    pub env: Arc<Vec<(String, String)>>,
    /// The clock for `timestamp` (`None` = now).
    pub now: Option<SystemTime>,
}

/// The result of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOutcome {
    /// The output, `None` while any used dependency is missing.
    pub output: Option<String>,
    /// Every dependency the pass called.
    pub used: BTreeSet<Dependency>,
    /// The used dependencies without (acceptable) data yet.
    pub missing: BTreeSet<Dependency>,
}

/// Executes one pass of `template` over `brain`.
pub fn render(
    template: &Template,
    brain: &Brain,
    ctx: &RenderContext,
) -> Result<RenderOutcome, Error> {
    let funcs = Funcs::new(
        brain.clone(),
        ctx.env.clone(),
        ctx.now.unwrap_or_else(SystemTime::now),
    );
    let out = match &template.engine {
        Engine::Go(t) => t.execute(&funcs),
        Engine::Handlebars(t) => t.execute(&funcs),
    };
    let (used, missing) = funcs.take_deps();
    let out = out?;
    Ok(RenderOutcome {
        output: missing.is_empty().then_some(out),
        used,
        missing,
    })
}
