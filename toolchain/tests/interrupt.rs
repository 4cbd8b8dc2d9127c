//! Ctrl-C in the middle of a build leaves nothing half-published, and the next run cleans
//! up after it.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ftreview_toolchain::{ensure_interpreter, Progress, SourceSpec};

const TEST_NAME: &str = "ctrl_c_mid_build_leaves_nothing_published_and_a_rerun_recovers";

#[test]
fn ctrl_c_mid_build_leaves_nothing_published_and_a_rerun_recovers() {
    // Child mode: this same test binary, re-executed, runs the build that gets interrupted.
    if let (Some(cache), Some(tree)) = (
        std::env::var_os("FTREVIEW_TEST_CHILD_CACHE"),
        std::env::var_os("FTREVIEW_TEST_CHILD_TREE"),
    ) {
        let req = request(&PathBuf::from(cache), SourceSpec::Path(tree.into()), None);
        let result = ensure_interpreter(&req, &Progress::hidden());
        panic!("the build should have been interrupted, got {result:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let marker = dir.path().join("configure-started");
    let tree = fake_source_tree(dir.path(), "touch \"$FTREVIEW_TEST_MARKER\"\nsleep 120");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env("FTREVIEW_TEST_CHILD_CACHE", &cache)
        .env("FTREVIEW_TEST_CHILD_TREE", &tree)
        .env("FTREVIEW_TEST_MARKER", &marker)
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "configure never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    // SAFETY: plain syscall on our own child's process group.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");

    assert!(ftreview_toolchain::list_cached(&cache).unwrap().is_empty());
    let leftovers = std::fs::read_dir(cache.join("work")).unwrap().count();
    assert_eq!(
        leftovers, 1,
        "the interrupted build's work dir is left for the next run"
    );

    // The rerun is not blocked by the dead build's lock and removes its leftovers.
    let tree = fake_source_tree(
        dir.path(),
        "echo 'configure: error: second run' >&2\nexit 1",
    );
    let err = build_error(&request(&cache, SourceSpec::Path(tree), None));
    assert!(err.contains("configure: error: second run"), "{err}");
    assert_nothing_published(&cache);
}
