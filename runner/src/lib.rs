//! ftreview's command line and orchestration: targets, venvs, extension builds, test and
//! stress runs. The binary in `main.rs` only parses arguments and dispatches here; everything
//! but the command line and the exit codes is private to the crate.
//!
//! Where things live: `commands/` one module per subcommand; `review/` the driver of one
//! target (setup stages, the schedule, the record); `phases/` the instrumented phases;
//! `build/` building the extension; `env/` venvs, uv and TSan's environment; `target/`
//! fetching what the user named; `events` the progress stream and its display.

mod build;
pub mod cli;
pub mod commands;
mod env;
mod events;
pub mod exit;
#[cfg(test)]
mod helper_contract;
mod phases;
mod process;
mod registry;
mod regression_tests;
mod review;
mod rundir;
mod target;
#[cfg(test)]
mod testdata;
