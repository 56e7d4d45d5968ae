//! The signals `kv` stops on, caught from the moment they are installed.
//! A handler registered lazily (`tokio::signal::ctrl_c()` registers on its
//! first poll) leaves a window in which the signal still kills the process;
//! seen under load for `kv node` (SIGTERM) and `kv bench` (SIGINT).

use crate::error::CliError;

/// SIGINT (Ctrl-C), and SIGTERM when asked for, caught from the moment
/// the value is made.
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Catches SIGINT (`kv bench`: Ctrl-C ends the run with its summary).
    pub fn interrupt() -> Result<Signals, CliError> {
        Signals::install(false)
    }

    /// Catches SIGINT and SIGTERM (`kv node`, `kv serve`).
    pub fn interrupt_or_terminate() -> Result<Signals, CliError> {
        Signals::install(true)
    }

    fn install(term: bool) -> Result<Signals, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let fail = |e| CliError::failed("installing signal handlers", e);
            Ok(Signals {
                int: signal(SignalKind::interrupt()).map_err(fail)?,
                term: match term {
                    true => Some(signal(SignalKind::terminate()).map_err(fail)?),
                    false => None,
                },
            })
        }
        #[cfg(not(unix))]
        {
            let _ = term;
            Ok(Signals {})
        }
    }

    /// Resolves on the first signal caught.
    pub async fn wait(mut self) {
        #[cfg(unix)]
        match &mut self.term {
            Some(term) => tokio::select! {
                _ = term.recv() => {}
                _ = self.int.recv() => {}
            },
            None => {
                self.int.recv().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
