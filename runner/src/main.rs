//! The `ftreview` command line: finds free-threading data races in Python C extensions.

use std::process::ExitCode;

use clap::Parser;

use ftreview::cli::{Cli, Command};
use ftreview::commands;
use ftreview::exit::{exit_code, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildPython(args) => commands::build_python::run(args),
        Command::Python(args) => commands::python::run(args),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Scan(args) => commands::scan::run(args),
        Command::Triage(args) => commands::triage::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Repro(args) => commands::repro::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Corpus(args) => commands::corpus::run(args),
    };
    match result {
        Ok(outcome) => exit_code(outcome),
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_code(Outcome::HarnessError)
        }
    }
}
