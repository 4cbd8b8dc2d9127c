//! One module per subcommand.

pub mod build_python;
pub mod corpus;
pub mod doctor;
pub mod python;
pub mod report;
pub mod repro;
pub mod run;
pub mod scan;
pub mod triage;
pub mod verify;
