//! `ftreview python`: the cached TSan interpreters (`list`, `path`, `show`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ftreview_toolchain::{default_cache_dir, find_cached, list_cached, load_manifest, Interpreter};

use crate::commands::build_python::CcArg;
use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct PythonArgs {
    #[command(subcommand)]
    pub command: PythonCommand,

    /// Cache directory (default: $FTREVIEW_CACHE_DIR, else ~/.cache/ftreview).
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PythonCommand {
    /// Table of cached interpreters: version, compiler, source, path.
    List,
    /// Print the python executable of the newest matching cached interpreter
    /// (e.g. `export FTREVIEW_PYTHON=$(ftreview python path --version 3.13 --cc clang)`).
    Path(Selector),
    /// Print the build manifest (source, checksum, configure flags, verification results) as JSON.
    Show(Selector),
}

#[derive(Debug, Args)]
pub struct Selector {
    /// Version prefix: `3.13` or `3.13.5` (default: any).
    #[arg(long)]
    pub version: Option<String>,
    /// Compiler family; `auto` matches either.
    #[arg(long, value_enum, default_value_t = CcArg::Auto)]
    pub cc: CcArg,
}

pub fn run(args: PythonArgs) -> anyhow::Result<Outcome> {
    let cache_dir = args.cache_dir.unwrap_or_else(default_cache_dir);
    match args.command {
        PythonCommand::List => {
            let interpreters = list_cached(&cache_dir)?;
            if interpreters.is_empty() {
                eprintln!(
                    "no interpreters cached in {}; build one with `ftreview build-python`",
                    cache_dir.display()
                );
            } else {
                print!("{}", table(&interpreters));
            }
            Ok(Outcome::Clean)
        }
        PythonCommand::Path(selector) => {
            println!("{}", select(&cache_dir, &selector)?.python.display());
            Ok(Outcome::Clean)
        }
        PythonCommand::Show(selector) => {
            let manifest = load_manifest(&select(&cache_dir, &selector)?)?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(Outcome::Clean)
        }
    }
}

fn select(cache_dir: &std::path::Path, selector: &Selector) -> anyhow::Result<Interpreter> {
    let version = selector.version.as_deref().unwrap_or("");
    find_cached(cache_dir, version, selector.cc.family()).with_context(|| {
        format!(
            "no cached interpreter matches version `{}` and compiler `{}` in {}; \
             `ftreview python list` shows what is there, `ftreview build-python` builds one",
            if version.is_empty() { "any" } else { version },
            selector.cc.family().map_or("any", |c| c.name()),
            cache_dir.display()
        )
    })
}

/// A plain aligned table.
fn table(interpreters: &[Interpreter]) -> String {
    let mut rows = vec![[
        "VERSION".to_string(),
        "COMPILER".to_string(),
        "SOURCE".to_string(),
        "PYTHON".to_string(),
    ]];
    rows.extend(interpreters.iter().map(|i| {
        [
            i.version.clone(),
            i.cc.clone(),
            format!("{} {}", i.source.kind, i.source.location),
            i.python.display().to_string(),
        ]
    }));
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}
