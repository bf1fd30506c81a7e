//! Go-style flag normalisation: `-bootstrap-expect=3` becomes `--bootstrap-expect=3`.
//!
//! Consul's CLI uses Go's `flag` package: every flag has one dash (`-server`,
//! `-node=n1`, `-data-dir /tmp/consul`). clap speaks GNU style, so `main` runs
//! argv through [`normalize`] before parsing, and turns clap's errors back into
//! one Go-style line with [`describe_error`] (`error: unknown flag: -foo`).

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Rewrites Go-style single-dash flags into clap's double-dash form.
///
/// Every token after `argv[0]` shaped like `-name` or `-name=value` (one dash, name
/// starting with an ASCII letter) becomes `--name` / `--name=value`; `-h` and
/// `-help` become `--help`, and `-v` / `-version` right after the program name become
/// `--version` (as `consul -v`). A lone `-` (stdin), negative numbers, tokens that
/// already start with `--`, and everything after a bare `--` are left alone. A value
/// separated by a space (`-bootstrap-expect 3`) needs no rewriting: clap reads it.
pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut passthrough = false;
    for (index, arg) in args.into_iter().enumerate() {
        if index == 0 || passthrough {
            out.push(arg);
            continue;
        }
        // Non-UTF-8 tokens cannot be flag names; they are values.
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        out.push(match rewrite(text, index) {
            Some(new) => OsString::from(new),
            None => arg,
        });
    }
    out
}

/// The rewritten token, or `None` when it stays as it is.
fn rewrite(text: &str, index: usize) -> Option<String> {
    let rest = text.strip_prefix('-')?;
    if rest.starts_with('-') || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name = rest.split('=').next().unwrap_or(rest);
    match name {
        "h" | "help" if name == rest => Some("--help".to_string()),
        "v" | "version" if index == 1 && name == rest => Some("--version".to_string()),
        _ => Some(format!("-{text}")),
    }
}

/// Go's `strconv.ParseBool`, for `-flag=value` booleans.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("parse error (expected true or false)".to_string()),
    }
}

/// The one-line, Go-style message for a clap error, or `None` when clap's own
/// output should be printed as is (help and version text).
///
/// Flag names are shown the way the user typed them (`-http-port`), not as clap's
/// internal `--http-port <HTTP_PORT>`.
pub fn describe_error(err: &clap::Error) -> Option<String> {
    let arg = || {
        err.get(ContextKind::InvalidArg)
            .map(context_text)
            .unwrap_or_default()
    };
    let message = match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::UnknownArgument => {
            let token = arg();
            if token.starts_with('-') && token.len() > 1 {
                format!("unknown flag: {}", go_flag_name(&token))
            } else {
                format!("unexpected argument: {token}")
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = err
                .get(ContextKind::InvalidValue)
                .map(context_text)
                .unwrap_or_default();
            let reason = match (
                std::error::Error::source(err),
                err.get(ContextKind::ValidValue),
            ) {
                (Some(source), _) => source.to_string(),
                (None, Some(valid)) => format!("must be one of {}", context_text(valid)),
                (None, None) if value.is_empty() => "a value is required".to_string(),
                (None, None) => "invalid value".to_string(),
            };
            format!(
                "invalid value \"{value}\" for flag {}: {reason}",
                go_flag_name(&arg())
            )
        }
        ErrorKind::NoEquals => format!(
            "flag {} takes its value with '=' (e.g. {}=true)",
            go_flag_name(&arg()),
            go_flag_name(&arg())
        ),
        ErrorKind::InvalidSubcommand => {
            let name = err
                .get(ContextKind::InvalidSubcommand)
                .map(context_text)
                .unwrap_or_default();
            format!("unknown command: {name}")
        }
        ErrorKind::MissingRequiredArgument => format!("missing required argument: {}", arg()),
        ErrorKind::ArgumentConflict => {
            let prior = err
                .get(ContextKind::PriorArg)
                .map(context_text)
                .unwrap_or_default();
            format!(
                "flag {} cannot be used with {}",
                go_flag_name(&arg()),
                go_flag_name(&prior)
            )
        }
        _ => {
            // Anything rarer: clap's own first line, minus its "error: " prefix.
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    };
    Some(format!("error: {message}"))
}

/// Text of one piece of error context.
fn context_text(value: &ContextValue) -> String {
    match value {
        ContextValue::String(s) => s.clone(),
        ContextValue::Strings(list) => list.join(", "),
        ContextValue::StyledStr(s) => s.to_string(),
        ContextValue::StyledStrs(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        ContextValue::Number(n) => n.to_string(),
        ContextValue::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// `--http-port <HTTP_PORT>` / `--server[=<SERVER>]` / `--foo=bar` → `-http-port` / `-server` / `-foo`.
fn go_flag_name(display: &str) -> String {
    let name: String = display
        .chars()
        .take_while(|c| !matches!(c, ' ' | '=' | '[' | '<'))
        .collect();
    match name.strip_prefix("--") {
        Some(long) => format!("-{long}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("registry-node")
            .chain(args.iter().copied())
            .map(OsString::from);
        normalize(args.collect())
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["agent", "-server"], &["agent", "--server"]),
            (
                &["agent", "-bootstrap-expect=3"],
                &["agent", "--bootstrap-expect=3"],
            ),
            (
                &["agent", "-bootstrap-expect", "3"],
                &["agent", "--bootstrap-expect", "3"],
            ),
            (
                &["agent", "-node=n1", "-dc=dc1"],
                &["agent", "--node=n1", "--dc=dc1"],
            ),
            (&["agent", "-server=false"], &["agent", "--server=false"]),
            (&["agent", "--server"], &["agent", "--server"]),
            (&["agent", "-h"], &["agent", "--help"]),
            (&["agent", "-help"], &["agent", "--help"]),
            (&["-h"], &["--help"]),
            (&["-v"], &["--version"]),
            (&["-version"], &["--version"]),
            (&["kv", "put", "k", "-"], &["kv", "put", "k", "-"]),
            (
                &["agent", "-https-port", "-1"],
                &["agent", "--https-port", "-1"],
            ),
            (&["agent", "-https-port=-1"], &["agent", "--https-port=-1"]),
            (&["agent", "-x", "-0.5"], &["agent", "--x", "-0.5"]),
            (
                &["kv", "put", "--", "-key", "-v"],
                &["kv", "put", "--", "-key", "-v"],
            ),
            (
                &["agent", "-hcl=a = \"-b\""],
                &["agent", "--hcl=a = \"-b\""],
            ),
            (&["agent", "-hx"], &["agent", "--hx"]),
            (&["members", "-v"], &["members", "--v"]),
            (&["agent", "-=x"], &["agent", "-=x"]),
        ];
        for (input, expected) in cases {
            assert_eq!(run(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn argv0_is_never_rewritten() {
        let out = normalize(vec![OsString::from("-weird-name"), OsString::from("-dev")]);
        assert_eq!(
            out,
            vec![OsString::from("-weird-name"), OsString::from("--dev")]
        );
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn flag_names_are_shown_go_style() {
        assert_eq!(go_flag_name("--http-port <HTTP_PORT>"), "-http-port");
        assert_eq!(go_flag_name("--server[=<SERVER>]"), "-server");
        assert_eq!(go_flag_name("--foo=bar"), "-foo");
        assert_eq!(go_flag_name("--foo"), "-foo");
    }
}
