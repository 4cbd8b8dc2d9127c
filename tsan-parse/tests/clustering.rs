//! Clustering of the fixture logs: snapshots of the root causes, stable ids across compilers,
//! many reports of one bug folding into one root cause, and suppression entries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tsan_parse::{
    parse_str, suppression_entries, triage_paths, Classifier, ClusterOptions, Frame,
    InternalReason, Mechanism, Origin, Phase, RootCause, Suppressions, Symbolizer, Triage,
    TriageOptions,
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
    if let Some(reason) = &cause.internal {
        let _ = writeln!(out, "    internal: {}", base_names(&reason.to_string()));
    }
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

/// The reuse extension's logs (see `regenerate_reuse.sh`), its module named as the extension.
fn reuse_triage(mode: &str, suppressions: Suppressions) -> Triage {
    let logs: Vec<PathBuf> = (1..=3)
        .map(|n| fixture(&format!("logs/pyext_reuse/{mode}_{n}.log")))
        .collect();
    let options = TriageOptions {
        classifier: Classifier::new(vec!["reuse.cpython".into()], vec![]),
        suppressions,
        ..TriageOptions::default()
    };
    triage(&logs, &options)
}

fn cpython_suppressions() -> Suppressions {
    Suppressions::read(&fixture("suppressions/pyext_reuse.txt")).unwrap()
}

/// The mechanisms of each internal root cause's accesses, with the frame that places them.
fn mechanisms(cause: &RootCause) -> Vec<(Option<Mechanism>, String)> {
    match &cause.internal {
        Some(InternalReason::Mechanisms { accesses }) => accesses
            .iter()
            .map(|a| {
                (
                    a.mechanism,
                    a.frame.function.as_deref().unwrap().to_string(),
                )
            })
            .collect(),
        other => panic!("{}: {other:?}", cause.id),
    }
}

/// A fresh object's memory cleared by the allocator (called from the extension's `tp_new`)
/// against another thread's speculative incref of a stale list item: legal by design, so not
/// the extension's, whether the read came from Python (`lst[i]`) or from the extension's
/// own `PyList_GetItemRef` call.
#[test]
fn allocator_reuse_against_try_incref_is_interpreter_internal() {
    let triage = reuse_triage("clean", Suppressions::default());
    assert_eq!(triage.stats.reports, 4);
    assert!(triage.root_causes.is_empty(), "{}", render(&triage));
    assert_eq!(triage.interpreter_noise.len(), 3);
    for cause in &triage.interpreter_noise {
        let mut found = mechanisms(cause);
        found.sort();
        assert_eq!(
            found,
            [
                (Some(Mechanism::Allocator), "_PyType_AllocNoTrack".into()),
                (Some(Mechanism::TryIncref), "_Py_TryIncrefCompare".into()),
            ],
            "{}",
            cause.id
        );
        // Still listed with the extension frame that called the allocator.
        let called_from: Vec<_> = (cause.sides.iter())
            .filter_map(|s| s.frame.as_ref()?.function.as_deref())
            .collect();
        assert!(called_from.contains(&"cell_new"), "{called_from:?}");
    }
    insta::assert_snapshot!("reuse_clean", render(&triage));
}

/// With CPython's own suppressions, `race_top:list_get_item_ref` matches the read side
/// once the inlined `Include/` helpers above `list_get_item_ref` are skipped.
#[test]
fn cpython_race_top_entries_match_past_inlined_header_helpers() {
    let triage = reuse_triage("clean", cpython_suppressions());
    assert!(triage.root_causes.is_empty());
    assert_eq!(triage.interpreter_noise.len(), 3);
    for cause in &triage.interpreter_noise {
        let Some(InternalReason::Suppressed { entry, frame }) = &cause.internal else {
            panic!("{}: {:?}", cause.id, cause.internal);
        };
        assert_eq!(entry, "race_top:list_get_item_ref");
        assert_eq!(frame.function.as_deref(), Some("list_get_item_ref"));
        // TSan's own top frame is the innermost inlined atomic helper.
        let read = cause
            .representative
            .accesses
            .iter()
            .find(|a| a.kind == tsan_parse::AccessKind::AtomicRead)
            .unwrap();
        let printed = read.stack.frames[0].function.as_deref().unwrap();
        assert!(printed.starts_with("_Py_atomic_load_"), "{printed}");
        assert_eq!(read.stack.effective_top(), Some(frame));
    }
}

/// The planted `store` writes list slots without the list's lock and releases the old item:
/// its races are the extension's, with or without CPython's `race_top:list_get_item_ref`
/// (which matches the read side of two of them): its own slot write against CPython's list
/// reads, its inlined `Py_DECREF` of an item another writer released, and the stale items
/// its `PyList_GetItemRef` call increfs under the list's lock (the allocator pairs where
/// one report of the cluster is such an incref). The pure allocator / try-incref pairs stay
/// apart, with their reason.
#[test]
fn the_extensions_own_access_is_never_hidden() {
    let expected: BTreeMap<String, u64> = [
        ("cell_new reuse.c:23:26 | reuse_latest reuse.c:41:12", 18),
        ("cell_new reuse.c:23:26 | reuse_store reuse.c:56:5", 9),
        (" | reuse_store reuse.c:55:5", 3 + 6),
        ("reuse_latest reuse.c:41:12 | reuse_store reuse.c:55:5", 5),
        ("reuse_store reuse.c:54:21 | reuse_store reuse.c:55:5", 3),
        ("reuse_store reuse.c:55:5 | reuse_store reuse.c:55:5", 3),
    ]
    .into_iter()
    .map(|(sites, count)| (sites.to_string(), count))
    .collect();
    for (suppressions, snapshot) in [
        (Suppressions::default(), "reuse_planted"),
        (cpython_suppressions(), "reuse_planted_suppressed"),
    ] {
        let triage = reuse_triage("planted", suppressions);
        assert_eq!(triage.stats.reports, 65);
        assert_eq!(triage.root_causes.len(), 7);
        let mut sites: BTreeMap<String, u64> = BTreeMap::new();
        for cause in &triage.root_causes {
            let frames: Vec<String> = (cause.sides.iter())
                .map(|s| s.frame.as_ref().map(Frame::describe).unwrap_or_default())
                .map(|d| base_names(&d))
                .collect();
            *sites.entry(frames.join(" | ")).or_default() += cause.count;
        }
        assert_eq!(sites, expected, "{snapshot}");
        assert_eq!(triage.interpreter_noise.len(), 3, "{snapshot}");
        assert_eq!(
            triage
                .interpreter_noise
                .iter()
                .map(|c| c.count)
                .sum::<u64>(),
            18
        );
        insta::assert_snapshot!(snapshot, render(&triage));
    }
}

/// A use-after-free is the act of whoever freed: the same real report, re-headed as one,
/// is the extension's even though its accesses are inside the allocator and a try-incref.
#[test]
fn a_use_after_free_is_never_a_mechanism() {
    let log = std::fs::read_to_string(fixture("logs/pyext_reuse/clean_1.log")).unwrap();
    let as_free = log.replace(
        "WARNING: ThreadSanitizer: data race",
        "WARNING: ThreadSanitizer: heap-use-after-free",
    );
    let classifier = Classifier::new(vec!["reuse.cpython".into()], vec![]);
    for (text, internal) in [(&log, true), (&as_free, false)] {
        let triage = tsan_parse::cluster(parse_str(text), &classifier, ClusterOptions::default());
        assert_eq!(triage.interpreter_noise.len(), usize::from(internal));
        assert_eq!(triage.root_causes.len(), usize::from(!internal));
    }
}

/// Some clusters mix reports: allocator pairs whose read is a try-incref (not the
/// extension's) and ones whose read is an ordinary incref the extension's call made (its
/// own). One report of the extension's makes the cluster the extension's, in any order; the
/// clusterer says so when that report arrives.
#[test]
fn a_cluster_is_the_extensions_once_one_report_is_in_any_order() {
    let classifier = Classifier::new(vec!["reuse.cpython".into()], vec![]);
    let mut reports = Vec::new();
    for n in 1..=3 {
        let log = fixture(&format!("logs/pyext_reuse/planted_{n}.log"));
        tsan_parse::parse_file(&log, &mut |report| reports.push(report));
    }
    let alone = |report: &tsan_parse::Report| {
        let triage = tsan_parse::cluster([report.clone()], &classifier, ClusterOptions::default());
        let internal = triage.root_causes.is_empty();
        let cause = triage
            .root_causes
            .into_iter()
            .chain(triage.interpreter_noise)
            .next();
        (cause.unwrap().id, internal)
    };
    let judged: Vec<(String, bool)> = reports.iter().map(alone).collect();
    let mixed = |id: &String| {
        judged.iter().any(|(i, internal)| i == id && *internal)
            && judged.iter().any(|(i, internal)| i == id && !*internal)
    };
    let mut mixed_ids: Vec<&String> = judged
        .iter()
        .map(|(id, _)| id)
        .filter(|id| mixed(id))
        .collect();
    mixed_ids.sort();
    mixed_ids.dedup();
    assert_eq!(mixed_ids, ["tsan-c34df7d998e94f7d"]);
    let mixed_id = mixed_ids[0];
    let of_mixed = |internal: bool| {
        (reports.iter().zip(&judged))
            .filter(|(_, (id, i))| id == mixed_id && *i == internal)
            .map(|(report, _)| report.clone())
            .collect::<Vec<_>>()
    };
    let (internal, extensions) = (of_mixed(true), of_mixed(false));
    assert_eq!((internal.len(), extensions.len()), (9, 9));

    let mut clusterer = tsan_parse::Clusterer::new(classifier.clone(), ClusterOptions::default());
    let added: Vec<tsan_parse::Added> = [&internal[0], &extensions[0], &extensions[1]]
        .into_iter()
        .map(|report| clusterer.add(report.clone()))
        .collect();
    use tsan_parse::Added::{Known, NewNoise, NewRootCause};
    assert_eq!(added, [NewNoise, NewRootCause, Known]);

    let forward = tsan_parse::cluster(reports.clone(), &classifier, ClusterOptions::default());
    let backward = tsan_parse::cluster(
        reports.into_iter().rev(),
        &classifier,
        ClusterOptions::default(),
    );
    assert!(forward.root_causes.iter().any(|c| &c.id == mixed_id));
    assert_eq!(
        serde_json::to_string(&forward).unwrap(),
        serde_json::to_string(&backward).unwrap()
    );
}

/// Two threads reallocating the extension's own buffer (`PyMem_Realloc` in the planted
/// `vector_push` of test-fixtures/racy_ext; the report is taken verbatim from an ftreview run
/// of it): both accesses are inside mimalloc, but the block is the extension's, so the race
/// is too.
#[test]
fn reallocating_the_extensions_own_block_is_the_extensions() {
    let options = TriageOptions {
        classifier: Classifier::new(vec!["ftfixture_racy".into()], vec![]),
        ..TriageOptions::default()
    };
    let triage = triage(
        &[fixture("logs/pyext_realloc/racy_vector_push.log")],
        &options,
    );
    assert_eq!(triage.stats.reports, 1);
    assert!(triage.interpreter_noise.is_empty(), "{}", render(&triage));
    let cause = &triage.root_causes[0];
    let tops: Vec<&str> = (cause.sides.iter())
        .filter_map(|s| s.top_frame.as_ref()?.function.as_deref())
        .collect();
    assert_eq!(tops, ["_mi_usable_size", "mi_page_set_has_aligned"]);
    let frames: Vec<(Option<&str>, Option<u32>)> = (cause.sides.iter())
        .map(|s| s.frame.as_ref().unwrap())
        .map(|f| (f.function.as_deref(), f.line))
        .collect();
    assert_eq!(frames, [(Some("vector_push"), Some(132)); 2]);
}

/// Two threads of the racy fixture's lazy-init race each building the unit table
/// (`PyDict_SetItemString` interns its keys; the reports are verbatim from an ftreview run):
/// one immortalizes an interned key while the other looks it up in, or increfs it from, the
/// interned table, or `PyDict_SetItemString` decrefs the interned key it got back.
/// Interpreter state the extension cannot lock: noise, not a root cause
/// filed under the extension's `build_unit_table`.
#[test]
fn interning_races_inside_the_interpreter_are_noise() {
    let options = TriageOptions {
        classifier: Classifier::new(vec!["ftfixture_racy".into()], vec![]),
        ..TriageOptions::default()
    };
    let triage = triage(
        &[
            fixture("logs/pyext_interning/racy_lookup.log"),
            fixture("logs/pyext_interning/decref_peer.log"),
        ],
        &options,
    );
    assert_eq!(triage.stats.reports, 5);
    assert!(triage.root_causes.is_empty(), "{}", render(&triage));
    let reasons: Vec<String> = (triage.interpreter_noise.iter())
        .map(|n| n.internal.as_ref().unwrap().to_string())
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("string interning")),
        "{reasons:?}"
    );
}
