//! Per-package overrides: what generic discovery cannot guess (test command, extra test
//! dependencies, environment, tests to leave out, timeouts, stress hints). A registry ships
//! inside the binary (`registry/packages.yaml`); a user file (`--registry FILE`, then
//! `~/.config/ftreview/registry.yaml`) adds packages or replaces fields of shipped ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::target::normalize;

const SHIPPED: &str = include_str!("../registry/packages.yaml");

/// Overrides for one package. Every field is optional; absent means "discover it".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageOverrides {
    /// Arguments to pytest instead of the discovered test paths (e.g. `[tests, -k, "not slow"]`).
    pub pytest_args: Option<Vec<String>>,
    /// Extra test requirements (pip requirement strings), installed after the discovered ones.
    pub deps: Option<Vec<String>>,
    /// Replace the discovered test requirements entirely with `deps`.
    #[serde(default)]
    pub only_listed_deps: bool,
    /// Environment for the test and stress runs.
    pub env: Option<BTreeMap<String, String>>,
    /// Tests or files to leave out (`tests/test_leaks.py`, `tests/test_x.py::test_y`).
    pub ignore: Option<Vec<String>>,
    /// Timeout of each test phase, in seconds.
    pub timeout: Option<u64>,
    /// Threads for the pytest-run-parallel phase.
    pub parallel_threads: Option<usize>,
    /// Build settings passed to the build backend (`-C` config settings, e.g. `setup-args=-Dfoo=bar`).
    pub config_settings: Option<Vec<String>>,
    /// Hints for the stress scenario generator (constructors, argument values, scripts).
    pub stress: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    packages: BTreeMap<String, PackageOverrides>,
}

/// All known overrides, keyed by normalized package name.
#[derive(Debug, Default)]
pub struct Registry {
    packages: BTreeMap<String, PackageOverrides>,
    /// Files that contributed, in order (for the run record).
    pub sources: Vec<String>,
}

impl Registry {
    /// The shipped registry, then the user's default file, then `extra` (later wins per field).
    pub fn load(extra: Option<&Path>) -> anyhow::Result<Registry> {
        let mut registry = Registry::default();
        registry.merge(SHIPPED, "shipped registry")?;
        let user_default = dirs::config_dir().map(|d| d.join("ftreview/registry.yaml"));
        let files: Vec<PathBuf> = user_default
            .filter(|p| p.is_file())
            .into_iter()
            .chain(extra.map(Path::to_path_buf))
            .collect();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read registry {}", file.display()))?;
            registry.merge(&text, &file.display().to_string())?;
        }
        Ok(registry)
    }

    fn merge(&mut self, text: &str, source: &str) -> anyhow::Result<()> {
        let file: RegistryFile = serde_yaml_ng::from_str(text)
            .with_context(|| format!("{source} is not a valid ftreview registry"))?;
        for (name, overrides) in file.packages {
            let entry = self.packages.entry(normalize(&name)).or_default();
            entry.overlay(overrides);
        }
        self.sources.push(source.to_string());
        Ok(())
    }

    /// Overrides for `name` (empty when the registry does not know it).
    pub fn get(&self, name: &str) -> PackageOverrides {
        self.packages
            .get(&normalize(name))
            .cloned()
            .unwrap_or_default()
    }
}

impl PackageOverrides {
    fn overlay(&mut self, other: PackageOverrides) {
        macro_rules! take {
            ($($field:ident),*) => { $( if other.$field.is_some() { self.$field = other.$field; } )* };
        }
        take!(
            pytest_args,
            deps,
            env,
            ignore,
            timeout,
            parallel_threads,
            config_settings,
            stress
        );
        self.only_listed_deps |= other.only_listed_deps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_registry_parses() {
        let mut registry = Registry::default();
        registry.merge(SHIPPED, "shipped").unwrap();
    }

    #[test]
    fn user_entries_override_field_by_field() {
        let mut registry = Registry::default();
        registry
            .merge(
                "packages:\n  Some_Pkg:\n    timeout: 100\n    deps: [hypothesis]\n",
                "a",
            )
            .unwrap();
        registry
            .merge("packages:\n  some-pkg:\n    timeout: 900\n", "b")
            .unwrap();
        let got = registry.get("some.pkg");
        assert_eq!(got.timeout, Some(900));
        assert_eq!(got.deps, Some(vec!["hypothesis".to_string()]));
        assert_eq!(registry.get("unknown"), PackageOverrides::default());
    }

    #[test]
    fn typos_are_rejected_with_the_file_name() {
        let mut registry = Registry::default();
        let err = registry
            .merge("packages:\n  x:\n    timout: 1\n", "my.yaml")
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("my.yaml") && text.contains("timout"),
            "{text}"
        );
    }
}
