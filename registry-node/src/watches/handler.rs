//! What a watch does with a changed view: print it, pipe it into a command, or
//! POST it to an HTTP endpoint. One run at a time: [`super::run_watch`] awaits
//! the handler before it queries again, so runs never overlap.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::WatchError;
use super::exec::{ChildCommand, describe_status, terminate};
use super::spec::{HandlerSpec, HttpHandlerConfig};
use registry_api::gojson::go_json_indent;

/// Environment variable carrying the view's index to a command handler.
pub const ENV_INDEX: &str = "CONSUL_INDEX";
/// Request header carrying the view's index to an HTTP handler.
pub const HEADER_INDEX: &str = "X-Consul-Index";
/// How much of a command handler's output an agent keeps for its log (Consul's
/// `WatchBufSize`).
const OUTPUT_KEEP: usize = 4 * 1024;
/// Time a command handler gets between SIGTERM and SIGKILL when the watch stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A watch handler and what a failure of it means.
#[derive(Debug, Clone)]
pub struct Handler {
    action: HandlerAction,
    /// `registry-node watch` stops (exit 1) when its handler fails, as Consul's
    /// CLI does; an agent logs the failure and keeps watching.
    stop_on_error: bool,
}

#[derive(Debug, Clone)]
enum HandlerAction {
    /// Pretty JSON on stdout.
    Print,
    /// A child process fed the JSON on stdin.
    Command {
        command: ChildCommand,
        /// Agent: collect output for the log. CLI: inherit stdout/stderr.
        capture_output: bool,
    },
    /// An HTTP request with the JSON as body.
    Http {
        client: reqwest::Client,
        config: HttpHandlerConfig,
    },
}

impl Handler {
    /// Prints each changed view as indented JSON (four spaces, as `consul watch`).
    pub fn print() -> Handler {
        Handler {
            action: HandlerAction::Print,
            stop_on_error: false,
        }
    }

    /// The CLI's handler: runs `command` with the view on stdin and `CONSUL_INDEX`
    /// in its environment, sharing our stdout/stderr; a failing run stops the watch.
    pub fn command(command: ChildCommand) -> Handler {
        Handler {
            action: HandlerAction::Command {
                command,
                capture_output: false,
            },
            stop_on_error: true,
        }
    }

    /// An agent watch's handler from its definition: output goes to the log and
    /// failures are logged, not fatal.
    pub fn from_spec(spec: &HandlerSpec) -> Result<Handler, String> {
        let action = match spec {
            HandlerSpec::Args(args) => HandlerAction::Command {
                command: ChildCommand::Exec(args.clone()),
                capture_output: true,
            },
            HandlerSpec::Shell(line) => HandlerAction::Command {
                command: ChildCommand::Shell(line.clone()),
                capture_output: true,
            },
            HandlerSpec::Http(config) => HandlerAction::Http {
                client: reqwest::Client::builder()
                    .timeout(config.timeout)
                    .build()
                    .map_err(|e| format!("failed to build the HTTP handler's client: {e}"))?,
                config: config.clone(),
            },
        };
        Ok(Handler {
            action,
            stop_on_error: false,
        })
    }

    /// Whether a failure of this handler ends the watch.
    pub fn stops_on_error(&self) -> bool {
        self.stop_on_error
    }

    /// Runs the handler once for `data` at `index`. A command handler still
    /// running when `token` is cancelled is stopped (SIGTERM, then SIGKILL).
    pub async fn run(
        &self,
        index: u64,
        data: &Value,
        token: &CancellationToken,
    ) -> Result<(), WatchError> {
        match &self.action {
            HandlerAction::Print => {
                let text = go_json_indent(data, "    ")
                    .map_err(|e| WatchError::Handler(format!("Error encoding output: {e}")))?;
                let mut out = std::io::stdout().lock();
                // A closed stdout (`| head`) is not worth failing the watch for.
                let _ = writeln!(out, "{text}").and_then(|()| out.flush());
                Ok(())
            }
            HandlerAction::Command {
                command,
                capture_output,
            } => run_command(command, *capture_output, index, data, token).await,
            HandlerAction::Http { client, config } => {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => Ok(()),
                    r = run_http(client, config, index, data) => r,
                }
            }
        }
    }
}

/// Compact JSON as Go's `json.Encoder` writes it: HTML-sensitive characters
/// escaped, one trailing newline.
fn go_json_line(data: &Value) -> String {
    let text = serde_json::to_string(data).expect("a JSON value always encodes");
    let mut line = text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    line.push('\n');
    line
}

async fn run_command(
    command: &ChildCommand,
    capture_output: bool,
    index: u64,
    data: &Value,
    token: &CancellationToken,
) -> Result<(), WatchError> {
    let mut cmd = command
        .command(true)
        .map_err(|e| WatchError::Handler(format!("Error executing handler: {e}")))?;
    cmd.env(ENV_INDEX, index.to_string()).stdin(Stdio::piped());
    if capture_output {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| WatchError::Handler(format!("Error starting handler: {e}")))?;

    // Feed stdin from its own task: a handler that never reads its input must not
    // block us, and one that exits early only breaks the pipe.
    let input = go_json_line(data).into_bytes();
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_tail(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_tail(s)));

    let status = tokio::select! {
        biased;
        _ = token.cancelled() => {
            let _ = terminate(&mut child, STOP_GRACE, true).await;
            return Ok(());
        }
        status = child.wait() => status,
    }
    .map_err(|e| WatchError::Handler(format!("Error executing handler: {e}")))?;

    if capture_output {
        let mut output = Vec::new();
        for task in [stdout, stderr].into_iter().flatten() {
            output.extend(task.await.unwrap_or_default());
        }
        if !output.is_empty() {
            tracing::debug!(output = %String::from_utf8_lossy(&output), "watch handler output");
        }
    }
    if status.success() {
        Ok(())
    } else {
        Err(WatchError::Handler(format!(
            "Error executing handler: {}",
            describe_status(status)
        )))
    }
}

/// Reads a stream to its end, keeping only the last [`OUTPUT_KEEP`] bytes.
async fn read_tail<R: AsyncRead + Unpin>(mut reader: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > OUTPUT_KEEP {
            kept.drain(..kept.len() - OUTPUT_KEEP);
        }
    }
    kept
}

async fn run_http(
    client: &reqwest::Client,
    config: &HttpHandlerConfig,
    index: u64,
    data: &Value,
) -> Result<(), WatchError> {
    let method = reqwest::Method::from_bytes(config.method.as_bytes())
        .map_err(|_| WatchError::Handler(format!("invalid method {:?}", config.method)))?;
    let mut request = client
        .request(method, &config.path)
        .header("Content-Type", "application/json")
        .header(HEADER_INDEX, index.to_string())
        .body(go_json_line(data));
    for (name, values) in &config.header {
        for value in values {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| WatchError::Handler(format!("Failed to invoke http watch handler: {e}")))?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let tail = &body[body.len().saturating_sub(OUTPUT_KEEP)..];
    if status.is_success() {
        tracing::trace!(output = %String::from_utf8_lossy(tail), "http watch handler output");
        Ok(())
    } else {
        Err(WatchError::Handler(format!(
            "http watch handler failed with code {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(tail).trim()
        )))
    }
}
