//! Exit codes shared by every command, so CI can tell a clean result from findings
//! from a broken harness. The reports crate decides a review's outcome; other commands
//! use the same three codes.

use std::process::ExitCode;

pub use ftreview_reports::Outcome;

pub fn exit_code(outcome: Outcome) -> ExitCode {
    ExitCode::from(outcome.code())
}
