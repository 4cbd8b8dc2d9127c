//! `ftreview run` options as a corpus list line or a shard gives them. They are grouped by
//! option with `run`'s own parser definition (so a target's `--budget` replaces the shard's
//! instead of clashing with it) and checked by that parser before anything runs.

use std::time::Duration;

use clap::{Arg, CommandFactory, Parser};

use crate::commands::run::RunArgs;

/// `ftreview run`'s arguments, parsed without the binary name.
#[derive(Debug, Parser)]
#[command(
    name = "ftreview run",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct RunCommandLine {
    #[command(flatten)]
    args: RunArgs,
}

/// Options a list line may not set, and why.
pub const NOT_PER_TARGET: &[(&str, &str)] = &[
    (
        "python",
        "one interpreter serves the whole shard: give it to `corpus run`",
    ),
    ("jobs", "set it for the whole shard on `corpus run`"),
    ("quiet", "set it for the whole shard on `corpus run`"),
    ("json", "the corpus reads each target's results.json"),
    ("out", "`corpus run` names each target's run directory"),
];

/// Options `corpus run` and `corpus plan` may not pass on to every target, and why.
pub const NOT_PER_SHARD: &[(&str, &str)] = &[
    ("json", "the corpus reads each target's results.json"),
    (
        "out",
        "`corpus run` names each target's run directory; its own `-o` comes before the run options",
    ),
];

/// One option with its value as typed: `--budget 20m`, `--benchmarks`, `--phases=stress`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunOption {
    /// The clap id of the argument (`budget`), to tell which options replace which.
    id: String,
    tokens: Vec<String>,
}

/// A sequence of `ftreview run` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionSet(Vec<RunOption>);

impl OptionSet {
    /// Groups `tokens` into options, refusing unknown ones, stray words and the `refused` ids.
    pub fn parse(tokens: &[String], refused: &[(&str, &str)]) -> Result<OptionSet, String> {
        let command = RunCommandLine::command();
        let mut options = Vec::new();
        let mut tokens = tokens.iter();
        while let Some(token) = tokens.next() {
            let (arg, inline_value) = find_arg(&command, token)?;
            let id = arg.get_id().as_str();
            if let Some((_, why)) = refused.iter().find(|(refused, _)| *refused == id) {
                return Err(format!("`{token}` cannot be set here: {why}"));
            }
            let mut group = vec![token.clone()];
            if arg.get_action().takes_values() && !inline_value {
                let value = tokens
                    .next()
                    .ok_or_else(|| format!("`{token}` needs a value"))?;
                group.push(value.clone());
            }
            options.push(RunOption {
                id: id.to_string(),
                tokens: group,
            });
        }
        Ok(OptionSet(options))
    }

    /// These options with every one that `over` also sets replaced by `over`'s.
    pub fn overridden_by(&self, over: &OptionSet) -> OptionSet {
        let kept = self
            .0
            .iter()
            .filter(|option| over.0.iter().all(|o| o.id != option.id));
        OptionSet(kept.chain(&over.0).cloned().collect())
    }

    pub fn tokens(&self) -> Vec<String> {
        self.0.iter().flat_map(|o| o.tokens.clone()).collect()
    }

    /// Checks `ftreview run TARGET OPTIONS` with `run`'s parser and returns the review's time
    /// budget; the error is clap's message.
    pub fn check(&self, target: &str) -> Result<Duration, String> {
        let argv = std::iter::once(target.to_string()).chain(self.tokens());
        match RunCommandLine::try_parse_from(argv) {
            Ok(line) => Ok(line.args.budget),
            Err(err) => {
                let text = err.to_string();
                let first = text.lines().next().unwrap_or_default();
                Err(first.trim_start_matches("error: ").to_string())
            }
        }
    }
}

/// The argument `token` names, and whether the token carries its value (`--phases=stress`,
/// `-j4`).
fn find_arg<'a>(command: &'a clap::Command, token: &str) -> Result<(&'a Arg, bool), String> {
    let found = if let Some(long) = token.strip_prefix("--") {
        let (name, value) = long
            .split_once('=')
            .map_or((long, None), |(n, v)| (n, Some(v)));
        command
            .get_arguments()
            .find(|a| a.get_long() == Some(name))
            .map(|a| (a, value.is_some()))
    } else if let Some(short) = token.strip_prefix('-').filter(|s| !s.is_empty()) {
        let mut chars = short.chars();
        let letter = chars.next();
        command
            .get_arguments()
            .find(|a| a.get_short() == letter)
            .map(|a| (a, !chars.as_str().is_empty()))
    } else {
        return Err(format!(
            "`{token}` is not an option: one target per line, `ftreview run` options after it (`--budget 20m`)"
        ));
    };
    found.ok_or_else(|| {
        format!("`{token}` is not an option of `ftreview run` (see `ftreview run --help`)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    fn parse(text: &str) -> Result<OptionSet, String> {
        OptionSet::parse(&words(text), NOT_PER_TARGET)
    }

    #[test]
    fn groups_options_with_their_values_in_every_spelling() {
        let options = parse("--budget 20m --benchmarks --phases=stress --seed 3").unwrap();
        assert_eq!(
            options.tokens(),
            words("--budget 20m --benchmarks --phases=stress --seed 3")
        );
        assert_eq!(options.0.len(), 4);
        assert_eq!(options.check("pkg"), Ok(Duration::from_secs(1200)));
    }

    #[test]
    fn a_targets_options_replace_the_shards() {
        let shard =
            OptionSet::parse(&words("-j 2 --budget 2m --phases stress"), NOT_PER_SHARD).unwrap();
        let line = parse("--phases=tests,stress --budget 5m").unwrap();
        let merged = shard.overridden_by(&line);
        assert_eq!(
            merged.tokens(),
            words("-j 2 --phases=tests,stress --budget 5m")
        );
        assert_eq!(merged.check("pkg"), Ok(Duration::from_secs(300)));
    }

    #[test]
    fn refuses_what_a_line_cannot_set_and_says_why() {
        let err = parse("--budget 20m -j2").unwrap_err();
        assert!(err.contains("`-j2` cannot be set here"), "{err}");
        let err = parse("-o somewhere").unwrap_err();
        assert!(err.contains("names each target's run directory"), "{err}");
    }

    #[test]
    fn unknown_options_stray_words_and_missing_values_are_named() {
        assert!(parse("--budgett 2m")
            .unwrap_err()
            .contains("`--budgett` is not an option of `ftreview run`"));
        assert!(parse("other-package")
            .unwrap_err()
            .contains("one target per line"));
        assert!(parse("--budget")
            .unwrap_err()
            .contains("`--budget` needs a value"));
    }

    #[test]
    fn bad_values_get_runs_own_message() {
        let err = parse("--budget 5d").unwrap().check("pkg").unwrap_err();
        assert!(err.contains("unknown unit"), "{err}");
        let err = parse("--phases fast").unwrap().check("pkg").unwrap_err();
        assert!(err.contains("invalid value 'fast'"), "{err}");
    }
}
