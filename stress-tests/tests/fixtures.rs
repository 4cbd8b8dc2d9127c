//! The fixtures' machine-readable list of planted races agrees with the `PLANTED` tags.

mod support;

use std::collections::BTreeSet;

use support::{fixtures_dir, planted_lines, Expected, QuirkyExpected};

#[test]
fn expected_yaml_lists_exactly_the_planted_lines() {
    let expected = Expected::load("racy_ext").unwrap();
    let source =
        std::fs::read_to_string(fixtures_dir().join("racy_ext").join(&expected.source)).unwrap();
    let tagged = planted_lines(&source);
    let listed: BTreeSet<u32> = expected
        .races
        .iter()
        .flat_map(|r| r.lines.iter().chain(r.peer.iter().flat_map(|p| &p.lines)))
        .copied()
        .collect();
    assert_eq!(
        tagged, listed,
        "expected.yaml and the PLANTED tags of {} disagree",
        expected.source
    );
    let categories: BTreeSet<&str> = expected.races.iter().map(|r| r.category.as_str()).collect();
    let required = [
        "global-counter",
        "lazy-init",
        "object-field",
        "borrowed-reference",
        "lock-order-inversion",
        "heap-block",
    ];
    assert!(
        required.iter().all(|c| categories.contains(c)),
        "a category is missing: {categories:?}"
    );
}

#[test]
fn clean_twin_has_no_planted_tag_and_the_same_python_api() {
    let racy =
        std::fs::read_to_string(fixtures_dir().join("racy_ext/src/ftfixture_racy.c")).unwrap();
    let clean =
        std::fs::read_to_string(fixtures_dir().join("clean_ext/src/ftfixture_clean.c")).unwrap();
    assert!(!clean.contains("PLANTED"));
    let api = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("{\""))
            .map(|l| l.split('"').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(api(&racy), api(&clean), "the twins' method tables differ");
}

#[test]
fn quirky_expected_yaml_lists_exactly_the_planted_lines() {
    let expected = QuirkyExpected::load().unwrap();
    let source =
        std::fs::read_to_string(fixtures_dir().join("quirky_ext").join(&expected.source)).unwrap();
    let listed: BTreeSet<u32> = expected
        .quirks
        .iter()
        .flat_map(|q| q.lines.clone())
        .collect();
    assert_eq!(
        planted_lines(&source),
        listed,
        "quirky_ext/expected.yaml and the PLANTED tags of {} disagree",
        expected.source
    );
    for line in &listed {
        let text = source.lines().nth(*line as usize - 1).unwrap();
        let id = text
            .split("/* PLANTED ")
            .nth(1)
            .unwrap()
            .trim_end_matches(" */");
        assert!(
            expected
                .quirks
                .iter()
                .any(|q| q.id == id && q.lines.contains(line)),
            "line {line} is tagged {id}, expected.yaml disagrees"
        );
    }
    assert_eq!(expected.verdict, "ready");
    assert!(source.contains("Py_MOD_GIL_NOT_USED"));
}
