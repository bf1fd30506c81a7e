//! Errors of the template engine.

/// Parse and execution errors, naming the template (its file) and, for
/// parse errors, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The template does not parse (or calls an unknown function).
    #[error("{template}:{line}{}: parse: {message}", col_suffix(*col))]
    Parse {
        /// Template name (the source file).
        template: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// Execution failed (a function returned an error, bad types, ...).
    /// gotmpl reports no position for these.
    #[error("{template}: execute: {message}")]
    Execute {
        /// Template name.
        template: String,
        /// What failed.
        message: String,
    },
}

fn col_suffix(col: usize) -> String {
    if col == 0 {
        String::new()
    } else {
        format!(":{col}")
    }
}

impl Error {
    /// Whether this is a parse error (vs. an execution error).
    pub fn is_parse(&self) -> bool {
        matches!(self, Error::Parse { .. })
    }
}
