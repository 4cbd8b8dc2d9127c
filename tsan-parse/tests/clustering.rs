//! Clustering of the fixture logs: snapshots of the root causes, stable ids across compilers,
//! many reports of one bug folding into one root cause, and suppression entries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tsan_parse::{
    parse_str, suppression_entries, triage_paths, Classifier, ClusterOptions, Origin, Phase,
    RootCause, Symbolizer, Triage, TriageOptions,
};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn triage(inputs: &[PathBuf], options: &TriageOptions) -> Triage {
    triage_paths(inputs, options, &|source| {
        source
            .file
            .file_stem()
            .map(|stem| Origin::new(Phase::Stress, stem.to_string_lossy()))
    })
    .unwrap()
}

/// The parts of a triage that do not depend on pids, addresses or temporary paths.
fn render(triage: &Triage) -> String {
    let mut out = String::new();
    let stats = &triage.stats;
    let _ = writeln!(
        out,
        "files={} reports={} partial={} crashes={} trailers={}",
        stats.files, stats.reports, stats.partial_reports, stats.crashes, stats.warnings_reported
    );
    for (title, causes) in [
        ("root causes", &triage.root_causes),
        ("interpreter noise", &triage.interpreter_noise),
    ] {
        let _ = writeln!(out, "{title}:");
        for cause in causes {
            render_cause(&mut out, cause);
        }
    }
    out
}

fn render_cause(out: &mut String, cause: &RootCause) {
    let _ = writeln!(out, "  {} {} x{}", cause.id, cause.kind, cause.count);
    let _ = writeln!(
        out,
        "    location={:?} variable={:?}",
        cause.location_key,
        cause.variable.as_deref().map(base_names)
    );
    for side in &cause.sides {
        let kinds: Vec<String> = side.access_kinds.iter().map(|k| k.to_string()).collect();
        let frame = side.frame.as_ref().map(|f| base_names(&f.describe()));
        let top = side.top_frame.as_ref().map(|f| base_names(&f.describe()));
        let _ = writeln!(
            out,
            "    side {:?} {kinds:?} {frame:?} top={top:?}",
            side.role
        );
    }
    let origins: Vec<String> = cause
        .origins
        .iter()
        .map(|o| format!("{}={}", o.origin.item.as_deref().unwrap_or("-"), o.count))
        .collect();
    let _ = writeln!(
        out,
        "    origins={origins:?} paths={} distinct={}",
        cause.call_paths.len(),
        cause.distinct_call_paths
    );
}

/// `/long/path/to/file.c:3` → `file.c:3` in every word (paths differ per machine).
fn base_names(text: &str) -> String {
    text.split(' ')
        .map(|word| word.rsplit('/').next().unwrap_or(word))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn gcc_fixtures_cluster_into_one_root_cause_per_bug() {
    let triage = triage(&[fixture("logs/gcc")], &TriageOptions::default());
    insta::assert_snapshot!("gcc", render(&triage));
}

#[test]
fn clang_fixtures_cluster_into_one_root_cause_per_bug() {
    let triage = triage(&[fixture("logs/clang")], &TriageOptions::default());
    insta::assert_snapshot!("clang", render(&triage));
}

#[test]
fn python_extension_log_with_an_extension_pattern() {
    let options = TriageOptions {
        classifier: Classifier::new(vec!["racy".into()], vec![]),
        ..TriageOptions::default()
    };
    let triage = triage(&[fixture("logs/pyext")], &options);
    assert!(!triage.root_causes.is_empty());
    insta::assert_snapshot!("pyext", render(&triage));
}

#[test]
fn the_same_bug_gets_the_same_id_from_gcc_and_clang() {
    let ids = |compiler: &str| -> BTreeMap<String, Vec<String>> {
        let triage = triage(
            &[fixture(&format!("logs/{compiler}"))],
            &TriageOptions::default(),
        );
        let mut by_program: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for cause in &triage.root_causes {
            let program = cause.representative.source.file.file_stem().unwrap();
            by_program
                .entry(program.to_string_lossy().into_owned())
                .or_default()
                .push(cause.id.clone());
        }
        // Without a symbolizer the unsymbolized runs key on module offsets, which differ.
        by_program.remove("shared_lib_unsymbolized");
        by_program.remove("line0_unsymbolized");
        by_program.values_mut().for_each(|ids| ids.sort());
        by_program
    };
    let (gcc, clang) = (ids("gcc"), ids("clang"));
    assert!(gcc.len() >= 16);
    assert_eq!(gcc, clang);
}

#[test]
fn symbolized_and_unsymbolized_runs_share_the_side_frames() {
    let options = |compiler: &str| TriageOptions {
        symbolizer: Some(Symbolizer::new(vec![fixture(&format!("bin/{compiler}"))])),
        ..TriageOptions::default()
    };
    for compiler in ["gcc", "clang"] {
        let symbolized = triage(
            &[fixture(&format!(
                "logs/{compiler}/shared_lib_unsymbolized.log"
            ))],
            &options(compiler),
        );
        let printed = triage(
            &[fixture(&format!("logs/{compiler}/shared_lib.log"))],
            &TriageOptions::default(),
        );
        let side_keys = |t: &Triage| -> Vec<String> {
            t.root_causes[0]
                .sides
                .iter()
                .map(|s| {
                    s.frame
                        .as_ref()
                        .map(|f| format!("{:?}:{:?}", f.function, f.line))
                        .unwrap_or_default()
                })
                .collect()
        };
        assert_eq!(side_keys(&symbolized), side_keys(&printed), "{compiler}");
    }
}

/// 200 processes hitting one bug: one root cause with a count, its origins and pids.
#[test]
fn two_hundred_reports_of_one_bug_are_one_root_cause() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::read_to_string(fixture("logs/gcc/race_global.log")).unwrap();
    for n in 0..200 {
        let pid = 1000 + n;
        let name = format!("test_{}.tsan.{pid}", n % 7);
        std::fs::write(dir.path().join(name), rewrite_pid(&log, pid)).unwrap();
    }
    let triage = triage(&[dir.path().to_path_buf()], &TriageOptions::default());
    assert_eq!(triage.root_causes.len(), 1);
    let cause = &triage.root_causes[0];
    assert_eq!(cause.count, 200);
    assert_eq!(cause.origins.len(), 7);
    assert_eq!(cause.origins.iter().map(|o| o.count).sum::<u64>(), 200);
    assert_eq!(cause.pids.len(), ClusterOptions::default().max_pids);
    assert_eq!(cause.pids[0], 1000, "the smallest pids are kept");
    assert_eq!(cause.distinct_call_paths, 1);
    assert_eq!(triage.stats.warnings_reported, 200);
    // Same input, same answer, whatever order rayon visited the files in.
    let again = self::triage(&[dir.path().to_path_buf()], &TriageOptions::default());
    assert_eq!(
        serde_json::to_string(&triage).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

fn rewrite_pid(text: &str, pid: u32) -> String {
    let start = text.find("(pid=").unwrap() + 5;
    let end = start + text[start..].find(')').unwrap();
    format!("{}{pid}{}", &text[..start], &text[end..])
}

#[test]
fn interpreter_only_reports_are_noise() {
    // A race inside the interpreter, reached from Python code only (shape of a real 3.13t
    // report; frames are CPython's).
    let log = "\
==================
WARNING: ThreadSanitizer: data race (pid=4242)
  Write of size 8 at 0x7f0000001000 by thread T2:
    #0 set_allocator_unlocked /src/Python-3.13.5/Objects/obmalloc.c:1002:5 (python3.13t+0x2a1b2c)
    #1 PyMem_SetAllocator /src/Python-3.13.5/Objects/obmalloc.c:1040:5 (python3.13t+0x2a1c00)
    #2 start_thread nptl/pthread_create.c:442:8 (libc.so.6+0x891f4)

  Previous read of size 8 at 0x7f0000001000 by main thread:
    #0 _PyObject_Malloc /src/Python-3.13.5/Objects/obmalloc.c:1700:12 (python3.13t+0x2a2000)
    #1 __libc_start_main ../csu/libc-start.c:360:3 (libc.so.6+0x27249)

  Location is global '_PyRuntime' of size 123456 at 0x7f0000000000 (python3.13t+0x900000)

SUMMARY: ThreadSanitizer: data race /src/Python-3.13.5/Objects/obmalloc.c:1002:5 in set_allocator_unlocked
==================
";
    let triage = tsan_parse::cluster(
        parse_str(log),
        &Classifier::default(),
        ClusterOptions::default(),
    );
    assert!(triage.root_causes.is_empty());
    assert_eq!(triage.interpreter_noise.len(), 1);
    assert_eq!(
        triage.interpreter_noise[0].location_key.as_deref(),
        Some("global:_PyRuntime")
    );
}

#[test]
fn suppressions_are_race_top_entries_for_extension_functions() {
    let triage = triage(&[fixture("logs/gcc")], &TriageOptions::default());
    let lines = suppression_entries(&triage.root_causes);
    let entries: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    assert!(
        entries.iter().all(|l| l.starts_with("race_top:")),
        "{lines:#?}"
    );
    for expected in [
        "race_top:record_hit",
        "race_top:table_grow",
        "race_top:cache_insert",
    ] {
        assert!(
            entries.iter().any(|l| *l == expected),
            "{expected} in {lines:#?}"
        );
    }
    // A race whose top frames are interceptors (close/write on an fd) cannot be targeted.
    assert!(!entries
        .iter()
        .any(|l| l.ends_with(":close") || l.ends_with(":write")));
    insta::assert_snapshot!("gcc_suppressions", lines.join("\n"));
}

/// Triage parses only what clustering needs, then reads each representative again in full.
#[test]
fn representatives_are_complete_reports() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::read(fixture("logs/clang/lock_order.log")).unwrap();
    let plain = dir.path().join("tsan.1");
    std::fs::write(&plain, &log).unwrap();
    let gzipped = dir.path().join("tsan.2.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gzipped).unwrap(), Default::default());
    std::io::Write::write_all(&mut encoder, &log).unwrap();
    encoder.finish().unwrap();
    for input in [plain, gzipped] {
        let triage = triage(std::slice::from_ref(&input), &TriageOptions::default());
        let representative = &triage.root_causes[0].representative;
        let mut parsed = parse_str(&String::from_utf8_lossy(&log)).remove(0);
        Classifier::default().classify_report(&mut parsed);
        assert_eq!(representative.source.file, input);
        assert_eq!(
            representative.threads, parsed.threads,
            "thread stacks are read back"
        );
        assert_eq!(representative.lock_edges.len(), parsed.lock_edges.len());
        for (ours, theirs) in representative.lock_edges.iter().zip(&parsed.lock_edges) {
            assert_eq!(
                ours.previous_stack.as_ref().map(|s| s.frames.len()),
                theirs.previous_stack.as_ref().map(|s| s.frames.len())
            );
        }
        assert!(representative
            .all_stacks()
            .flat_map(|(_, s)| &s.frames)
            .all(|f| f.origin != tsan_parse::FrameOrigin::Unclassified));
    }
}
