//! What can go wrong in the `kv` binary, and the exit code each failure
//! gives.
//!
//! Exit codes (DESIGN §7): 0 success, 1 "not found" (not an error, see
//! [`crate::output::Outcome::NotFound`]), 2 usage or configuration errors,
//! 3 for every other failure (a request failed, a node is down, I/O).

use std::process::ExitCode;

/// A failure of a `kv` command, shaped by the exit code it gives.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or shell line is wrong.
    #[error("{0}")]
    Usage(String),
    /// The configuration is wrong or conflicts with the data directory.
    #[error("{0}")]
    Config(String),
    /// A request, a node or the local system failed.
    #[error("{0}")]
    Failed(String),
}

/// Exit code for "the key does not exist".
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for every other failure.
pub const EXIT_FAILED: u8 = 3;

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) | CliError::Config(_) => EXIT_USAGE,
            CliError::Failed(_) => EXIT_FAILED,
        })
    }

    /// A failure with context, e.g. `CliError::failed("starting node 1", e)`.
    pub fn failed(context: &str, e: impl std::fmt::Display) -> CliError {
        CliError::Failed(format!("{context}: {e}"))
    }
}

impl From<kv_node::Error> for CliError {
    fn from(e: kv_node::Error) -> CliError {
        match e {
            kv_node::Error::LayoutMismatch { .. } | kv_node::Error::PlacementChanged { .. } => {
                CliError::Config(e.to_string())
            }
            kv_node::Error::UnknownNode(_) => CliError::Usage(e.to_string()),
            e if e.is_locked() => CliError::Failed(format!(
                "{e} (is another kv process using this data directory?)"
            )),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// Squeezes a multi-line message into one line. toml's parse errors draw
/// the offending source line in a gutter with a caret under the fault; the
/// source line is kept (quoted), the gutter and caret are dropped.
pub fn one_line(message: &str) -> String {
    let mut parts = Vec::new();
    let mut source = None;
    for line in message.lines() {
        let after_number = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        match after_number.strip_prefix('|') {
            Some(code) => {
                let code = code.trim();
                let marker_only = code.chars().all(|c| matches!(c, '^' | '-' | ' '));
                if !marker_only {
                    source = Some(code);
                }
            }
            None if !line.trim().is_empty() => parts.push(line.trim()),
            None => {}
        }
    }
    let Some((first, rest)) = parts.split_first() else {
        return String::new();
    };
    let mut out = first.trim_end_matches(':').to_string();
    if let Some(code) = source {
        out.push_str(&format!(" (`{code}`)"));
    }
    if !rest.is_empty() {
        out.push_str(": ");
        out.push_str(&rest.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_become_one_line() {
        let msg = "invalid cluster config: TOML parse error at line 2, column 14\n  |\n2 | partitions = \"four\"\n  |              ^^^^^^\ninvalid type: string \"four\", expected u32\n";
        assert_eq!(
            one_line(msg),
            "invalid cluster config: TOML parse error at line 2, column 14 (`partitions = \"four\"`): invalid type: string \"four\", expected u32"
        );
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn layout_mismatch_is_a_config_error() {
        let e = kv_node::Error::LayoutMismatch {
            path: "d".into(),
            recorded: "partitions = 4".into(),
            configured: "partitions = 8".into(),
        };
        let cli = CliError::from(e);
        assert!(matches!(cli, CliError::Config(_)), "{cli:?}");
        assert_eq!(cli.exit_code(), ExitCode::from(EXIT_USAGE));
    }
}
