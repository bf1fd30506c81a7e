//! `templater`: a consul-template compatible renderer. This crate's library
//! is the template engine; the watcher (blocking queries), runner and CLI
//! drive it.
//!
//! # Layout
//!
//! * [`dependency`] — the query grammar (`tag.name@dc~near|filter`) and what
//!   each data source fetches from Consul ([`Dependency::source`]).
//! * [`brain`] — decoded data per dependency ([`decode`] turns a Consul
//!   response body into consul-template's shapes; [`Brain`] stores it).
//! * [`funcs`] — the function set (API functions record used/missing
//!   dependencies; helpers are pure), written once over [`value::Value`].
//! * [`value`] — the neutral value type and Go-compatible JSON/YAML/TOML output.
//! * [`gotemplate`] — Go `text/template` dialect on gotmpl, with AST rewrites
//!   for what gotmpl lacks (scratch methods, typed string maps).
//! * [`handlebars`] — Handlebars dialect with the same functions as helpers.
//! * [`render`] — [`Template::parse`] and [`render()`]: one pass, returning the
//!   output (once nothing is missing) and the dependencies seen.
//!
//! The binary around the engine:
//!
//! * [`cli`] / [`config`] — upstream's flags and config file keys, merged into
//!   one [`config::Config`] (pure, unit-tested).
//! * [`watch`] — one blocking-query view per unique dependency
//!   ([`watch::Watcher`]), retrying through registry outages.
//! * [`runner`] — the n-pass run loop: render → watch every `used`
//!   dependency → on new data `decode` + `Brain::remember` → render again;
//!   [`quiescence`] timers, [`write`] rules (atomic, check before install),
//!   [`command`]s once per pass, the [`exec`] child.
//! * [`fswatch`] — inotify for `file` dependencies and template sources.
//! * [`app`] — signals, pid file and the reload loop; `main.rs` is thin.

pub mod app;
pub mod brain;
pub mod cli;
pub mod command;
pub mod config;
pub mod dependency;
pub mod error;
pub mod exec;
pub mod fswatch;
pub mod funcs;
pub mod gotemplate;
pub mod handlebars;
pub mod quiescence;
pub mod render;
pub mod runner;
pub mod value;
pub mod watch;
pub mod write;

pub use brain::{Brain, Data, decode};
pub use dependency::{Dependency, Source};
pub use error::Error;
pub use render::{Dialect, RenderContext, RenderOutcome, Template, TemplateOptions, render};
