//! The Handlebars dialect (`.hbs`, engine = "handlebars"): the same function
//! set as helpers, usable as subexpressions:
//! `{{#each (service "nginx")}}server {{Address}}:{{Port}};{{/each}}`.
//!
//! Helpers convert their JSON parameters to [`Value`]s, call [`Funcs::call`]
//! (the one definition of every function) and hand the result back as JSON.
//! Output is not HTML-escaped (these are config files). Scratch methods are
//! helpers named `scratch.Set` or `scratchSet`. `executeTemplate` is not
//! offered: Handlebars has partials (`{{> name}}`, `{{#*inline "name"}}`).

use std::sync::{Arc, Mutex};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};

use crate::error::Error;
use crate::funcs::{self, Funcs};
use crate::value::{from_serde, to_serde};

/// The render currently using the registry (helpers are registered once).
type Slot = Arc<Mutex<Option<Funcs>>>;

struct FuncHelper {
    name: &'static str,
    slot: Slot,
}

impl HelperDef for FuncHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<_> = h
            .params()
            .iter()
            .map(|p| from_serde(p.value(), false))
            .collect();
        let funcs = self
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| RenderErrorReason::Other("no render in progress".into()))?;
        let out = funcs
            .call(self.name, &args)
            .map_err(|e| RenderErrorReason::Other(format!("error calling {}: {e}", self.name)))?;
        Ok(ScopedJson::Derived(to_serde(&out)))
    }
}

const MAIN: &str = "main";

/// A compiled Handlebars template with the function helpers registered.
pub struct HbsTemplate {
    name: String,
    registry: Handlebars<'static>,
    slot: Slot,
    /// Serializes renders: the helpers share one slot.
    render_lock: Mutex<()>,
}

impl HbsTemplate {
    /// Compiles `src`; `name` (the file) prefixes errors.
    pub fn parse(name: &str, src: &str) -> Result<Self, Error> {
        let slot: Slot = Arc::new(Mutex::new(None));
        let mut registry = Handlebars::new();
        registry.register_escape_fn(handlebars::no_escape);
        for &f in funcs::NAMES {
            let helper = FuncHelper {
                name: f,
                slot: slot.clone(),
            };
            registry.register_helper(f, Box::new(helper));
            if let Some(method) = f.strip_prefix("scratch.") {
                let helper = FuncHelper {
                    name: f,
                    slot: slot.clone(),
                };
                registry.register_helper(&format!("scratch{method}"), Box::new(helper));
            }
        }
        registry.register_template_string(MAIN, src).map_err(|e| {
            let (line, col) = e.pos().unwrap_or((0, 0));
            Error::Parse {
                template: name.to_string(),
                line,
                col,
                message: e.reason().to_string(),
            }
        })?;
        Ok(HbsTemplate {
            name: name.to_string(),
            registry,
            slot,
            render_lock: Mutex::new(()),
        })
    }

    /// Renders with an empty context; helper calls go to `funcs`.
    pub fn execute(&self, funcs: &Funcs) -> Result<String, Error> {
        let _guard = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(funcs.clone());
        let out = self.registry.render(MAIN, &serde_json::Value::Null);
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        out.map_err(|e| Error::Execute {
            template: self.name.clone(),
            message: match e.line_no {
                Some(line) => format!("line {line}: {}", e.reason()),
                None => e.reason().to_string(),
            },
        })
    }
}
