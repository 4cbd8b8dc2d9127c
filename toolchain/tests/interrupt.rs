//! Builds in other processes: Ctrl-C in the middle leaves nothing half-published and the
//! next run cleans up after it; two concurrent builds of one interpreter take turns.

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ftreview_toolchain::{ensure_interpreter, BuildEvent, Progress, SourceSpec};

/// Child mode: this test binary, re-executed by `spawn_build`, runs one build and prints
/// its outcome.
#[test]
fn child_build() {
    let (Some(cache), Some(tree)) = (
        std::env::var_os("FTREVIEW_TEST_CHILD_CACHE"),
        std::env::var_os("FTREVIEW_TEST_CHILD_TREE"),
    ) else {
        return;
    };
    let req = request(&PathBuf::from(cache), SourceSpec::Path(tree.into()), None);
    // Notes go to stdout, so the parent can wait for what the build says it is doing.
    let progress = Progress::to(|event| {
        if let BuildEvent::Note(note) = event {
            println!("CHILD-NOTE: {note}");
        }
    });
    match ensure_interpreter(&req, &progress) {
        Ok(i) => println!("CHILD-RESULT: built {}", i.python.display()),
        Err(e) => println!("CHILD-RESULT: {e:#}"),
    }
}

/// Starts a build of `tree` in its own process group, as a terminal's foreground job would be.
fn spawn_build(cache: &Path, tree: &Path, env: &[(&str, &Path)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_build", "--nocapture", "--test-threads=1"])
        .env("FTREVIEW_TEST_CHILD_CACHE", cache)
        .env("FTREVIEW_TEST_CHILD_TREE", tree)
        .stdout(Stdio::piped())
        .process_group(0);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.spawn().unwrap()
}

fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
fn ctrl_c(child: &mut Child) {
    // SAFETY: plain syscall on our own child's process group.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
}

/// The child's stdout lines as they come (a reader thread; the iterator blocks).
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::IntoIter<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx.into_iter()
}

/// `configure` that, with FTREVIEW_TEST_SLOW set, signals it started and hangs; otherwise
/// it signals and fails at once.
const CONFIGURE: &str = r#"touch "$FTREVIEW_TEST_MARKER"
if [ -n "$FTREVIEW_TEST_SLOW" ]; then sleep 120; fi
echo 'configure: error: fast failure' >&2
exit 1"#;

#[test]
fn ctrl_c_mid_build_leaves_nothing_published_and_a_rerun_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let marker = dir.path().join("configure-started");
    let tree = fake_source_tree(dir.path(), CONFIGURE);
    let mut child = spawn_build(
        &cache,
        &tree,
        &[
            ("FTREVIEW_TEST_MARKER", &marker),
            ("FTREVIEW_TEST_SLOW", Path::new("1")),
        ],
    );
    wait_for(&marker);
    ctrl_c(&mut child);

    assert!(ftreview_toolchain::list_cached(&cache).unwrap().is_empty());
    let leftovers = std::fs::read_dir(cache.join("work")).unwrap().count();
    assert_eq!(
        leftovers, 1,
        "the interrupted build's work dir is left for the next run"
    );

    // The rerun is not blocked by the dead build's lock and removes its leftovers.
    std::env::set_var("FTREVIEW_TEST_MARKER", dir.path().join("second-run"));
    let err = build_error(&request(&cache, SourceSpec::Path(tree), None));
    assert!(err.contains("configure: error: fast failure"), "{err}");
    assert_nothing_published(&cache);
}

#[test]
fn a_concurrent_build_of_the_same_interpreter_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let tree = fake_source_tree(dir.path(), CONFIGURE);
    let first_marker = dir.path().join("first-configure");
    let second_marker = dir.path().join("second-configure");
    let mut first = spawn_build(
        &cache,
        &tree,
        &[
            ("FTREVIEW_TEST_MARKER", &first_marker),
            ("FTREVIEW_TEST_SLOW", Path::new("1")),
        ],
    );
    wait_for(&first_marker);
    let mut second = spawn_build(&cache, &tree, &[("FTREVIEW_TEST_MARKER", &second_marker)]);
    let mut lines = stdout_lines(&mut second);
    // The second build says it waits for the lock before it blocks on it.
    let waiting = lines
        .by_ref()
        .find(|line| line.contains("CHILD-NOTE: waiting for another ftreview building"));
    assert!(
        waiting.is_some(),
        "the second build never waited for the lock"
    );
    assert!(
        !second_marker.exists(),
        "the second build configured while the first held the lock"
    );
    ctrl_c(&mut first);
    second.wait().unwrap();
    let rest: Vec<String> = lines.collect();
    let result = rest
        .join("\n")
        .split_once("CHILD-RESULT: ")
        .map(|(_, r)| r.to_string())
        .expect("the second build printed no result");
    assert!(second_marker.exists());
    assert!(
        result.contains("configure: error: fast failure"),
        "{result}"
    );
    assert_nothing_published(&cache);
}
