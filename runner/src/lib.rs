//! ftreview's command line and orchestration: targets, venvs, extension builds, test and
//! stress runs. The binary in `main.rs` only parses arguments and dispatches here.

pub mod attribution;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod extension;
pub mod index;
pub mod phases;
pub mod pipeline;
pub mod process;
pub mod progress;
pub mod registry;
pub mod rundir;
pub mod stress;
pub mod target;
pub mod tsan_env;
pub mod unpack;
pub mod venv;
