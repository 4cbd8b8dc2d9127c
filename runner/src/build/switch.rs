//! The environment variable a project's setup code reads to require its C build
//! (`os.environ.get("PKG_REQUIRE_EXTENSIONS") == "1"`), told from the ones that disable it by
//! the words of its name, with the value the code compares it against.

use std::sync::LazyLock;

use regex::Regex;

use super::setup_code::SetupCode;

/// Name words that turn the C build off: such a variable is never the one to set.
const DISABLING: &[&str] = &[
    "NO",
    "NOT",
    "DISABLE",
    "DISABLED",
    "SKIP",
    "PURE",
    "PUREPYTHON",
    "WITHOUT",
    "OPTIONAL",
    "IGNORE",
];
/// Name words that insist on something.
const INSISTING: &[&str] = &[
    "REQUIRE",
    "REQUIRED",
    "REQUIRES",
    "FORCE",
    "FORCED",
    "STRICT",
    "MANDATORY",
    "ALWAYS",
];
/// Name words that turn something on.
const ENABLING: &[&str] = &["BUILD", "WITH", "USE", "ENABLE", "COMPILE"];
/// Name words for the C part itself.
const C_PART: &[&str] = &[
    "C",
    "EXT",
    "EXTS",
    "EXTENSION",
    "EXTENSIONS",
    "CEXT",
    "CEXTS",
    "CEXTENSION",
    "CEXTENSIONS",
    "CYTHON",
    "SPEEDUP",
    "SPEEDUPS",
    "ACCEL",
    "ACCELERATOR",
    "ACCELERATED",
    "NATIVE",
    "COMPILED",
];
/// Values that mean "off" when compared against: the switch is then set to "1".
const FALSY: &[&str] = &["", "0", "false", "no", "off"];

/// A variable to set for a build that must include the C part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForceSwitch {
    pub variable: String,
    pub value: String,
    /// `setup.py:19`
    pub read_at: String,
}

/// The switch the setup code reads whose name most clearly asks for the C build, if any.
pub(crate) fn find(code: &SetupCode) -> Option<ForceSwitch> {
    static READ: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?:environ(?:\.get\(|\[)|getenv\()\s*["']([A-Za-z_][A-Za-z0-9_]*)["']|["']([A-Za-z_][A-Za-z0-9_]*)["']\s+in\s+(?:os\.)?environ\b"#)
            .expect("valid regex")
    });
    let mut best: Option<(u8, ForceSwitch)> = None;
    for found in code.matches(&READ) {
        let Some(name) = found.captures.get(1).or_else(|| found.captures.get(2)) else {
            continue;
        };
        let Some(score) = strength(name.as_str()) else {
            continue;
        };
        if best.as_ref().is_some_and(|(s, _)| *s >= score) {
            continue;
        }
        let after = &found.line[name.end()..];
        best = Some((
            score,
            ForceSwitch {
                variable: name.as_str().to_string(),
                value: compared_value(after).unwrap_or_else(|| "1".into()),
                read_at: found.at,
            },
        ));
    }
    best.map(|(_, switch)| switch)
}

/// How clearly a name asks for the C build: 2 insists, 1 enables, `None` not at all.
fn strength(name: &str) -> Option<u8> {
    let upper = name.to_uppercase();
    let words: Vec<&str> = upper.split('_').filter(|w| !w.is_empty()).collect();
    let has = |set: &[&str]| words.iter().any(|w| set.contains(w));
    if has(DISABLING) || !has(C_PART) {
        return None;
    }
    if has(INSISTING) {
        Some(2)
    } else {
        has(ENABLING).then_some(1)
    }
}

/// The value the rest of the line compares the variable with (`== "yes"`, `in ("1", …)`),
/// unless it is a value meaning "off".
fn compared_value(rest: &str) -> Option<String> {
    static COMPARED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?:==\s*|\bin\s*[\(\[\{]\s*)["']([^"']*)["']"#).expect("valid regex")
    });
    let value = COMPARED.captures(rest)?[1].to_string();
    (!FALSY.contains(&value.to_lowercase().as_str())).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> SetupCode {
        SetupCode::of_setup_py(text)
    }

    #[test]
    fn the_fixture_switch_is_found_with_its_value_and_line() {
        let setup_py = include_str!("../../../test-fixtures/build_forced_ext/setup.py");
        let switch = find(&code(setup_py)).unwrap();
        assert_eq!(switch.variable, "FTFIXTURE_FORCED_REQUIRE_EXTENSION");
        assert_eq!(switch.value, "yes");
        assert!(setup_py
            .lines()
            .nth(
                switch
                    .read_at
                    .trim_start_matches("setup.py:")
                    .parse::<usize>()
                    .unwrap()
                    - 1
            )
            .unwrap()
            .contains("FTFIXTURE_FORCED_REQUIRE_EXTENSION"));
    }

    #[test]
    fn disabling_and_unrelated_variables_are_never_chosen() {
        let text = "import os\nif os.environ.get('PKG_NO_EXTENSIONS'): pass\nif os.getenv('FORCE_COLOR'): pass\nif 'PKG_DISABLE_C_EXT' in os.environ: pass\nCC = os.environ['CC']\n";
        assert_eq!(find(&code(text)), None);
    }

    #[test]
    fn an_insisting_name_beats_an_enabling_one_and_off_values_become_1() {
        let text = "with_c = os.environ.get('PKG_WITH_CEXT', '1') == '1'\nstrict = os.environ.get('PKG_REQUIRE_EXTENSIONS', '0') != '0'\n";
        assert_eq!(
            find(&code(text)),
            Some(ForceSwitch {
                variable: "PKG_REQUIRE_EXTENSIONS".into(),
                value: "1".into(),
                read_at: "setup.py:2".into()
            })
        );
        let compared = "if os.environ.get('PKG_BUILD_SPEEDUPS', '').lower() in ('true', '1'):\n";
        assert_eq!(find(&code(compared)).unwrap().value, "true");
    }
}
