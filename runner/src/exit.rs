//! Exit codes shared by every command, so CI can tell a clean result from findings
//! from a broken harness.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report (exit 0).
    Clean,
    /// Findings were reported (exit 1).
    Findings,
    /// ftreview itself could not do its job: bad input, a failed build, a crash of the
    /// harness (exit 2). Partial results are still written before this is returned.
    HarnessError,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::from(0),
            Outcome::Findings => ExitCode::from(1),
            Outcome::HarnessError => ExitCode::from(2),
        }
    }
}
