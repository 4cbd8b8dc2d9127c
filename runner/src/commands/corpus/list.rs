//! The corpus list: one target per line as `ftreview run` takes it (`name==version`,
//! `git+URL@rev`, a path relative to the working directory), then that target's own
//! `ftreview run` options; `#` starts a comment.
//!
//! ```text
//! # the hash-table extensions first
//! multidict==6.7.1   --budget 20m
//! git+https://github.com/aio-libs/frozenlist@v1.8.0
//! vendor/my_ext      --phases stress,parallel   # a local tree
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::options::{OptionSet, NOT_PER_TARGET};
use crate::target::{normalize, TargetSpec};

/// One target of the list.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number in the list.
    pub line: usize,
    /// The target as written.
    pub target: String,
    pub spec: TargetSpec,
    /// The line's own options.
    pub options: OptionSet,
    /// The shard's options with the line's in place of the same ones: what `ftreview run` gets.
    pub run_options: OptionSet,
    /// The review's time budget under `run_options`.
    pub budget: Duration,
}

impl Entry {
    /// The run directory's name, unique within the list.
    pub fn slug(&self) -> String {
        self.spec.slug()
    }
}

/// What identifies a target across corpus runs when its version changes: the normalized
/// project name on PyPI, the repository name of a git URL, the directory or archive name.
pub fn target_key(spec: &TargetSpec) -> String {
    match spec {
        TargetSpec::Pypi { name, .. } => normalize(name),
        TargetSpec::Git { url, .. } => TargetSpec::Git {
            url: url.clone(),
            rev: None,
        }
        .slug(),
        TargetSpec::Dir { .. } | TargetSpec::Archive { .. } => spec.slug(),
    }
}

/// A parsed list file.
#[derive(Debug, Clone)]
pub struct CorpusList {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl CorpusList {
    /// Reads and checks the list; `shard_options` are the `ftreview run` options given for
    /// every target. Every bad line is reported at once, each with its number.
    pub fn load(path: &Path, shard_options: &OptionSet) -> anyhow::Result<CorpusList> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the corpus list {}", path.display()))?;
        let entries = parse(&text, shard_options).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|(line, message)| format!("  {}:{line}: {message}", path.display()))
                .collect();
            anyhow::anyhow!(
                "the corpus list {} has {} bad line(s); fix them and rerun:\n{}",
                path.display(),
                errors.len(),
                lines.join("\n")
            )
        })?;
        if entries.is_empty() {
            bail!(
                "the corpus list {} names no target: write one per line (`multidict==6.7.1`, `git+URL@rev`, a path)",
                path.display()
            );
        }
        Ok(CorpusList {
            path: path.to_path_buf(),
            entries,
        })
    }
}

/// The entries of a list, or every (line, message) that is wrong with it.
fn parse(text: &str, shard_options: &OptionSet) -> Result<Vec<Entry>, Vec<(usize, String)>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut slugs: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let words: Vec<String> = strip_comment(raw)
            .split_whitespace()
            .map(String::from)
            .collect();
        let Some((target, options)) = words.split_first() else {
            continue;
        };
        match parse_entry(line, target, options, shard_options) {
            Ok(entry) => match slugs.insert(entry.slug(), line) {
                Some(first) => errors.push((
                    line,
                    format!(
                        "`{target}` gets the run directory `{}` that line {first} already has: list each target once (local trees need distinct directory names)",
                        entry.slug()
                    ),
                )),
                None => entries.push(entry),
            },
            Err(message) => errors.push((line, message)),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

fn parse_entry(
    line: usize,
    target: &str,
    options: &[String],
    shard_options: &OptionSet,
) -> Result<Entry, String> {
    if let Some(word) = [target]
        .into_iter()
        .chain(options.iter().map(String::as_str))
        .find(|w| w.contains(['"', '\'']))
    {
        return Err(format!(
            "`{word}`: quotes are not supported; targets and option values cannot contain spaces"
        ));
    }
    let spec = TargetSpec::parse(target).map_err(|e| format!("{e:#}"))?;
    let own = OptionSet::parse(options, NOT_PER_TARGET)?;
    let run_options = shard_options.overridden_by(&own);
    let budget = run_options.check(target)?;
    Ok(Entry {
        line,
        target: target.to_string(),
        spec,
        options: own,
        run_options,
        budget,
    })
}

/// The line without its comment: `#` at the start or after whitespace (a `#` inside a URL
/// stays).
fn strip_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && previous_is_space {
            return &line[..i];
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<Entry>, Vec<(usize, String)>> {
        parse(text, &OptionSet::default())
    }

    #[test]
    fn reads_targets_options_and_comments() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-fixtures");
        let text = format!(
            "# corpus\n\nmultidict==6.7.1  --budget 20m   # pinned\n\
             git+https://github.com/a/frozenlist@v1.8.0#egg=x\n{fixtures}/racy_ext --phases stress\n"
        );
        let entries = parse_text(&text).unwrap();
        let lines: Vec<usize> = entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert_eq!(entries[0].target, "multidict==6.7.1");
        assert_eq!(entries[0].options.tokens(), ["--budget", "20m"]);
        assert_eq!(entries[0].budget, Duration::from_secs(1200));
        assert_eq!(
            entries[1].target,
            "git+https://github.com/a/frozenlist@v1.8.0#egg=x"
        );
        assert_eq!(entries[1].budget, Duration::from_secs(900), "run's default");
        assert_eq!(entries[2].slug(), "racy_ext");
        assert_eq!(target_key(&entries[0].spec), "multidict");
        assert_eq!(target_key(&entries[1].spec), "frozenlist");
    }

    #[test]
    fn every_bad_line_is_named_with_what_is_wrong() {
        let text = "ok-package\nmultidict>=6\npkg --budget 5d\npkg2 --jobs 4\n\
                    pkg3 another-target\n./missing/dir\npkg4 --phases 'stress'\nok-package==1.0\n";
        let errors = parse_text(text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
        let message = |line: usize| &errors.iter().find(|(l, _)| *l == line).unwrap().1;
        assert!(message(2).contains("not a target"), "{}", message(2));
        assert!(message(3).contains("unknown unit"), "{}", message(3));
        assert!(message(4).contains("whole shard"), "{}", message(4));
        assert!(message(5).contains("one target per line"), "{}", message(5));
        assert!(
            message(6).contains("no such file or directory"),
            "{}",
            message(6)
        );
        assert!(
            message(7).contains("quotes are not supported"),
            "{}",
            message(7)
        );
    }

    #[test]
    fn two_targets_with_one_run_directory_are_refused() {
        let errors = parse_text("multidict==6.7.1\nmultidict==6.7.1 --budget 2m\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 2);
        assert!(
            errors[0].1.contains("line 1 already has"),
            "{}",
            errors[0].1
        );
    }

    #[test]
    fn the_shards_options_apply_unless_a_line_sets_its_own() {
        let shard = OptionSet::parse(
            &["--budget".into(), "2m".into()],
            super::super::options::NOT_PER_SHARD,
        )
        .unwrap();
        let entries = parse("a\nb --budget 3m\n", &shard).unwrap();
        assert_eq!(entries[0].budget, Duration::from_secs(120));
        assert_eq!(entries[1].budget, Duration::from_secs(180));
        assert_eq!(entries[1].run_options.tokens(), ["--budget", "3m"]);
    }

    #[test]
    fn a_list_file_with_errors_names_its_path_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.txt");
        std::fs::write(&path, "good\nbad>=1\n").unwrap();
        let err = CorpusList::load(&path, &OptionSet::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("corpus.txt:2: bad>=1: not a target"), "{err}");
        std::fs::write(&path, "# nothing\n").unwrap();
        let err = CorpusList::load(&path, &OptionSet::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no target"), "{err}");
    }
}
