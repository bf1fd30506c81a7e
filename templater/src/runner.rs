//! The run loop (B.4.1): render, watch what the templates used, re-render as
//! data arrives, write what changed, run commands, supervise the exec child.
//!
//! One task owns all state (templates, brain, watcher, child) and `select!`s
//! over signals, watcher events, quiescence timers, template-file edits and
//! the child's exit. A template renders only once none of its dependencies is
//! missing; nested lookups (`range services` → `service .Name`) take several
//! passes, each started by the data of the previous one. Dependencies no
//! template uses any more are stopped and forgotten after every pass.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::brain::Brain;
use crate::command::{self, CommandError};
use crate::config::{Config, ConfigError, TemplateConfig, command_env};
use crate::dependency::Dependency;
use crate::exec::{ExecChild, exit_code};
use crate::fswatch::FileWatch;
use crate::quiescence::Quiescence;
use crate::render::{RenderContext, Template, TemplateOptions, render};
use crate::watch::{WatchEvent, WatchSettings, Watcher};
use crate::write::{self, WriteError};

/// Exit code of a runner error (upstream).
pub const EXIT_RUNNER_ERROR: i32 = 14;
/// Exit code after the kill signal (upstream, also for a graceful stop).
pub const EXIT_INTERRUPTED: i32 = 12;

/// Errors that stop the runner (exit 14).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A template file cannot be read.
    #[error("template {path}: {source}")]
    ReadTemplate {
        /// The source path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A template does not parse or fails to execute (with `error_fatal`).
    #[error("{0}")]
    Template(#[from] crate::error::Error),
    /// A destination cannot be written.
    #[error("writing {0}")]
    Write(#[from] WriteError),
    /// A template command failed or timed out.
    #[error("{0}")]
    Command(#[from] CommandError),
    /// A dependency gave up (`-consul-retry-attempts` exhausted).
    #[error("watcher: {0}")]
    Watch(String),
    /// The exec child could not start.
    #[error("exec: {0}")]
    Exec(std::io::Error),
    /// The registry address is unusable.
    #[error("consul: {0}")]
    Address(String),
}

/// How the runner ended.
#[derive(Debug)]
pub enum Exit {
    /// Exit the process with this code.
    Code(i32),
    /// The reload signal: start again with this configuration.
    Reload(Box<Config>),
}

/// Re-reads the configuration on the reload signal.
pub type Reloader<'a> = &'a (dyn Fn() -> Result<Config, ConfigError> + Sync);

/// One template and what the loop knows about it.
struct Tmpl {
    cfg: TemplateConfig,
    parsed: Template,
    /// Dependencies of the last pass.
    used: BTreeSet<Dependency>,
    /// Has produced output at least once.
    rendered: bool,
    /// Armed after every template rendered once, when a wait applies.
    quiescence: Option<Quiescence>,
    /// `-dry`: the last printed output (printed again only when it changes).
    last_dry: Option<String>,
    /// The "waiting for data that does not exist" warning was logged.
    warned_missing: bool,
}

/// Reads and parses one template stanza.
pub fn load_template(cfg: &TemplateConfig) -> Result<Template, RunError> {
    let (name, text) = match (&cfg.source, &cfg.contents) {
        (Some(src), _) => {
            let text = std::fs::read_to_string(src).map_err(|source| RunError::ReadTemplate {
                path: src.display().to_string(),
                source,
            })?;
            (src.display().to_string(), text)
        }
        (None, Some(c)) => ("(inline)".to_string(), c.clone()),
        (None, None) => ("(inline)".to_string(), String::new()),
    };
    let opts = TemplateOptions {
        dialect: cfg.dialect,
        left_delim: cfg.left_delimiter.clone(),
        right_delim: cfg.right_delimiter.clone(),
        error_on_missing_key: cfg.error_on_missing_key,
    };
    Ok(Template::parse(&name, &text, &opts)?)
}

/// What writing one rendered output did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    Changed,
    CheckFailed,
}

/// The run loop's state.
pub struct Runner {
    cfg: Config,
    templates: Vec<Tmpl>,
    brain: Brain,
    watcher: Watcher,
    events: mpsc::UnboundedReceiver<WatchEvent>,
    ctx: RenderContext,
    env: BTreeMap<String, String>,
    child: Option<ExecChild>,
    all_rendered: bool,
    /// The dependency count last logged.
    logged_deps: usize,
    _cancel: CancellationToken,
}

impl Runner {
    /// Parses every template and prepares the watcher (nothing runs yet).
    pub fn new(cfg: Config) -> Result<Runner, RunError> {
        info!(
            "(runner) creating new runner (dry: {}, once: {})",
            cfg.dry, cfg.once
        );
        let mut templates = Vec::with_capacity(cfg.templates.len());
        for t in &cfg.templates {
            templates.push(Tmpl {
                parsed: load_template(t)?,
                cfg: t.clone(),
                used: BTreeSet::new(),
                rendered: false,
                quiescence: None,
                last_dry: None,
                warned_missing: false,
            });
        }
        let base = registry_api::client::Client::new(&cfg.consul.address)
            .map_err(|e| RunError::Address(e.to_string()))?
            .address()
            .to_string();
        let settings = WatchSettings {
            base,
            token: cfg.consul.token.clone(),
            auth: cfg.consul.auth.clone(),
            block_query_wait: cfg.block_query_wait,
            max_stale: cfg.max_stale,
            retry: cfg.consul.retry,
        };
        let (tx, events) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        info!("(runner) creating watcher");
        let watcher = Watcher::new(settings, tx, cancel.child_token());
        let env = command_env(&cfg.consul);
        let ctx = RenderContext {
            env: Arc::new(env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            now: None,
        };
        Ok(Runner {
            cfg,
            templates,
            brain: Brain::new(),
            watcher,
            events,
            ctx,
            env,
            child: None,
            all_rendered: false,
            logged_deps: usize::MAX,
            _cancel: cancel,
        })
    }

    /// Unique dependencies watched.
    pub fn watched(&self) -> usize {
        self.watcher.len()
    }

    /// Runs until a signal, `-once` completion, the child's exit or an error.
    /// The exec child is always stopped before this returns.
    pub async fn run(
        mut self,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
        reload: Reloader<'_>,
    ) -> Result<Exit, RunError> {
        let result = self.run_loop(signals, reload).await;
        if let Some(child) = self.child.take() {
            child.stop().await;
        }
        self.watcher.stop();
        result
    }

    async fn run_loop(
        &mut self,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
        reload: Reloader<'_>,
    ) -> Result<Exit, RunError> {
        info!("(runner) starting");
        let sources: Vec<PathBuf> = self
            .templates
            .iter()
            .filter_map(|t| t.cfg.source.clone())
            .collect();
        let mut edits = FileWatch::new(&sources);
        let all: Vec<usize> = (0..self.templates.len()).collect();
        self.pass(&all).await?;
        if let Some(exit) = self.after_pass().await? {
            return Ok(exit);
        }
        loop {
            let timer = self
                .templates
                .iter()
                .filter_map(|t| t.quiescence.as_ref().and_then(Quiescence::next))
                .min();
            tokio::select! {
                biased;
                Some(sig) = signals.recv() => {
                    if let Some(exit) = self.on_signal(sig, reload).await {
                        return Ok(exit);
                    }
                }
                status = child_exit(&mut self.child) => {
                    let code = match status {
                        Ok(s) => exit_code(&s),
                        Err(e) => { error!(error = %e, "(child) wait failed"); 1 }
                    };
                    info!(code, "(child) exited; exiting with its code");
                    self.child = None;
                    return Ok(Exit::Code(code));
                }
                Some(ev) = self.events.recv() => {
                    let mut dirty = BTreeSet::new();
                    self.apply(ev, &mut dirty)?;
                    // Drain everything queued before running (one pass per burst).
                    while let Ok(ev) = self.events.try_recv() {
                        self.apply(ev, &mut dirty)?;
                    }
                    let now = Instant::now();
                    let mut run_now = Vec::new();
                    for i in dirty {
                        let t = &mut self.templates[i];
                        match t.quiescence.as_mut() {
                            Some(q) if self.all_rendered && !self.cfg.once => {
                                let at = q.change(now);
                                debug!(template = %t.cfg.display_name(), in_ms = (at - now).as_millis() as u64, "(runner) quiescence timer set");
                            }
                            _ => run_now.push(i),
                        }
                    }
                    if !run_now.is_empty() {
                        self.pass(&run_now).await?;
                        if let Some(exit) = self.after_pass().await? {
                            return Ok(exit);
                        }
                    }
                }
                _ = sleep_until(timer), if timer.is_some() => {
                    let now = Instant::now();
                    let due: Vec<usize> = self.templates.iter_mut().enumerate().filter_map(|(i, t)| {
                        let q = t.quiescence.as_mut()?;
                        q.due(now).then(|| { q.fired(); i })
                    }).collect();
                    self.pass(&due).await?;
                    if let Some(exit) = self.after_pass().await? {
                        return Ok(exit);
                    }
                }
                _ = edits.changed() => {
                    let changed = self.reparse_sources();
                    if !changed.is_empty() {
                        self.pass(&changed).await?;
                        if let Some(exit) = self.after_pass().await? {
                            return Ok(exit);
                        }
                    }
                }
            }
        }
    }

    /// Stores a watcher event; marks the templates that use the dependency.
    fn apply(&mut self, ev: WatchEvent, dirty: &mut BTreeSet<usize>) -> Result<(), RunError> {
        match ev {
            WatchEvent::Fatal(_, e) => Err(RunError::Watch(e)),
            WatchEvent::Data(dep, data) => {
                if !self.watcher.watching(&dep) {
                    // A late answer of a stopped view.
                    return Ok(());
                }
                if self.brain.remember(dep.clone(), data) {
                    debug!(dependency = %dep, "(runner) received data");
                    for (i, t) in self.templates.iter().enumerate() {
                        if t.used.contains(&dep) {
                            dirty.insert(i);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Re-reads template sources whose text changed (beyond upstream, which
    /// needs SIGHUP); a source that no longer parses keeps the old template.
    fn reparse_sources(&mut self) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, t) in self.templates.iter_mut().enumerate() {
            if t.cfg.source.is_none() {
                continue;
            }
            match load_template(&t.cfg) {
                Ok(parsed) => {
                    info!(template = %t.cfg.display_name(), "(runner) template source changed; re-rendering");
                    t.parsed = parsed;
                    changed.push(i);
                }
                Err(e) => {
                    error!(error = %e, "(runner) edited template does not load; keeping the previous one");
                }
            }
        }
        changed
    }

    /// Renders the given templates once, writes, runs commands, reloads the child.
    async fn pass(&mut self, which: &[usize]) -> Result<(), RunError> {
        info!("(runner) initiating run");
        let mut commands: Vec<(Vec<String>, Duration)> = Vec::new();
        let mut any_changed = false;
        for &i in which {
            let outcome = match render(&self.templates[i].parsed, &self.brain, &self.ctx) {
                Ok(o) => o,
                Err(e) if self.templates[i].cfg.error_fatal => return Err(e.into()),
                Err(e) => {
                    error!(error = %e, "(runner) render failed; keeping the last output");
                    continue;
                }
            };
            for dep in &outcome.used {
                self.watcher.add(dep);
            }
            let t = &mut self.templates[i];
            t.used = outcome.used;
            let Some(output) = outcome.output else {
                // Missing dependencies whose data already arrived (a `key`
                // that does not exist, an empty `safeLs`) block until changed.
                let stuck: Vec<String> = outcome
                    .missing
                    .iter()
                    .filter(|d| self.brain.recall(d).is_some())
                    .map(ToString::to_string)
                    .collect();
                if !stuck.is_empty() && stuck.len() == outcome.missing.len() && !t.warned_missing {
                    warn!(template = %t.cfg.display_name(), waiting_for = %stuck.join(", "),
                        "(runner) template waits for data that does not exist yet");
                    t.warned_missing = true;
                }
                debug!(template = %t.cfg.display_name(), missing = outcome.missing.len(), "(runner) missing data");
                continue;
            };
            t.rendered = true;
            t.warned_missing = false;
            match self.write(i, output).await? {
                Outcome::Changed => {
                    any_changed = true;
                    let t = &self.templates[i];
                    if !t.cfg.command.is_empty() && !self.cfg.dry {
                        commands.push((t.cfg.command.clone(), t.cfg.command_timeout));
                    }
                }
                Outcome::Unchanged | Outcome::CheckFailed => {}
            }
        }
        self.forget_unused();
        if !self.all_rendered && self.templates.iter().all(|t| t.rendered) {
            self.all_rendered = true;
            info!("(runner) all templates rendered");
            // Quiescence applies from now on (the first render is immediate).
            if !self.cfg.once {
                for t in &mut self.templates {
                    if let Some(w) = t.cfg.wait.or(self.cfg.wait) {
                        t.quiescence = Some(Quiescence::new(w));
                    }
                }
            }
        }
        for (cmd, timeout) in command::dedup(&commands) {
            info!(command = %command::display(&cmd), "(runner) executing command");
            command::run(&cmd, timeout, &self.env).await?;
        }
        if any_changed && let Some(child) = self.child.as_mut() {
            child.reload().await.map_err(RunError::Exec)?;
        }
        Ok(())
    }

    /// Stops watching what no template uses any more.
    fn forget_unused(&mut self) {
        let used: BTreeSet<Dependency> = self
            .templates
            .iter()
            .flat_map(|t| t.used.iter().cloned())
            .collect();
        self.watcher.retain(&used);
        self.brain.retain(|d| used.contains(d));
        if self.logged_deps != self.watcher.len() {
            self.logged_deps = self.watcher.len();
            info!("(watcher) watching {} dependencies", self.watcher.len());
            if self.watcher.len() > 128 {
                warn!(
                    dependencies = self.watcher.len(),
                    "(watcher) more than 128 dependencies: every one is a blocking query"
                );
            }
        }
    }

    /// Applies the write rules to one rendered output.
    async fn write(&mut self, i: usize, output: String) -> Result<Outcome, RunError> {
        let dry = self.cfg.dry;
        let t = &mut self.templates[i];
        let name = t.cfg.display_name();
        if dry {
            if t.last_dry.as_deref() == Some(output.as_str()) {
                return Ok(Outcome::Unchanged);
            }
            let dest = t
                .cfg
                .destination
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "> {dest}\n{output}");
            let _ = out.flush();
            t.last_dry = Some(output);
            return Ok(Outcome::Changed);
        }
        let Some(dest) = t.cfg.destination.clone() else {
            return Ok(Outcome::Unchanged);
        };
        let existing = std::fs::read(&dest).ok();
        if !write::needs_write(existing.as_deref(), output.as_bytes()) {
            debug!(template = %name, dest = %dest.display(), "(runner) output unchanged");
            return Ok(Outcome::Unchanged);
        }
        let staged = write::stage(
            &dest,
            output.as_bytes(),
            t.cfg.perms,
            t.cfg.create_dest_dirs,
        )?;
        if let Some(check) = &t.cfg.check_command
            && let Err(e) =
                command::check(check, staged.path(), t.cfg.command_timeout, &self.env).await
        {
            error!(template = %name, dest = %dest.display(), error = %e,
                "(runner) check command rejected the rendered file; keeping the old one");
            return Ok(Outcome::CheckFailed);
        }
        staged.commit(t.cfg.backup)?;
        info!("(runner) rendered \"{}\" => \"{}\"", name, dest.display());
        Ok(Outcome::Changed)
    }

    /// `-once` completion and exec start, after a pass.
    async fn after_pass(&mut self) -> Result<Option<Exit>, RunError> {
        if !self.all_rendered {
            return Ok(None);
        }
        if let (Some(exec), None) = (&self.cfg.exec, &self.child) {
            let child = ExecChild::spawn(exec, &self.env).map_err(RunError::Exec)?;
            self.child = Some(child);
            if self.cfg.once {
                // -once with -exec: wait for the child, exit with its code.
                self.watcher.stop();
                let status = child_exit(&mut self.child).await;
                self.child = None;
                return Ok(Some(Exit::Code(status.map(|s| exit_code(&s)).unwrap_or(1))));
            }
        }
        if self.cfg.once {
            info!("(runner) once: all templates rendered; exiting");
            return Ok(Some(Exit::Code(0)));
        }
        Ok(None)
    }

    /// Reload, stop, or forward to the child.
    async fn on_signal(&mut self, sig: Signal, reload: Reloader<'_>) -> Option<Exit> {
        if Some(sig) == self.cfg.reload_signal {
            info!(signal = %sig, "(runner) reloading configuration and templates");
            return match reload() {
                Ok(cfg) => Some(Exit::Reload(Box::new(cfg))),
                Err(e) => {
                    // Beyond upstream (which exits 15): keep running what works.
                    error!(error = %e, "(runner) reload failed; keeping the running configuration");
                    None
                }
            };
        }
        if Some(sig) == self.cfg.kill_signal {
            info!(signal = %sig, "(runner) received kill signal; stopping");
            return Some(Exit::Code(EXIT_INTERRUPTED));
        }
        if sig == Signal::SIGTERM {
            // Beyond upstream (#782): SIGTERM is how service managers stop us.
            info!("(runner) received SIGTERM; stopping");
            return Some(Exit::Code(0));
        }
        if let Some(child) = &self.child {
            debug!(signal = %sig, "(runner) forwarding signal to the child");
            child.signal(sig);
        }
        None
    }
}

/// Waits for the child's exit, or forever without a child.
async fn child_exit(child: &mut Option<ExecChild>) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
