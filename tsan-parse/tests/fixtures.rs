//! The parser over real reports captured on this machine from gcc 12 (libtsan) and clang-19
//! (compiler-rt) runs of the programs in `tests/fixtures/programs` (see `regenerate.sh`).

use std::fs;
use std::path::{Path, PathBuf};

use tsan_parse::{
    parse_file, parse_str, AccessKind, Classifier, FrameOrigin, Location, Report, ReportKind,
    Symbolizer, MAIN_THREAD,
};

const COMPILERS: [&str; 2] = ["gcc", "clang"];

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn reports(compiler: &str, name: &str) -> Vec<Report> {
    let path = fixture(&format!("logs/{compiler}/{name}.log"));
    let mut reports = Vec::new();
    let summary = parse_file(&path, &mut |report| reports.push(report));
    assert_eq!(summary.error, None, "{}", path.display());
    reports
}

fn only_report(compiler: &str, name: &str) -> Report {
    let mut all = reports(compiler, name);
    assert_eq!(all.len(), 1, "{compiler}/{name}: {all:#?}");
    let report = all.remove(0);
    assert!(report.complete, "{compiler}/{name} is complete");
    assert!(report.pid.is_some(), "{compiler}/{name} has a pid");
    report
}

fn function_names(stack: &tsan_parse::Stack) -> Vec<&str> {
    stack
        .frames
        .iter()
        .map(|f| f.function.as_deref().unwrap_or("<null>"))
        .collect()
}

#[test]
fn every_fixture_parses_to_the_kind_its_program_makes() {
    let expected: &[(&str, ReportKind, usize)] = &[
        ("race_global", ReportKind::DataRace, 1),
        ("race_heap", ReportKind::DataRace, 1),
        ("race_atomic", ReportKind::DataRace, 1),
        ("race_stack_tls", ReportKind::DataRace, 2),
        ("race_fd", ReportKind::DataRace, 1),
        ("race_cpp", ReportKind::DataRace, 1),
        ("use_after_free", ReportKind::HeapUseAfterFree, 1),
        ("lock_order", ReportKind::LockOrderInversion, 1),
        ("thread_leak", ReportKind::ThreadLeak, 1),
        ("signal_unsafe", ReportKind::SignalUnsafeCall, 1),
        ("signal_errno", ReportKind::SignalHandlerSpoilsErrno, 1),
        ("mutex_destroy-locked", ReportKind::DestroyOfLockedMutex, 1),
        ("mutex_double-lock", ReportKind::DoubleLock, 1),
        ("mutex_bad-unlock", ReportKind::UnlockOfUnlockedMutex, 1),
        ("mutex_read-lock", ReportKind::ReadLockOfWriteLockedMutex, 1),
        ("segv", ReportKind::DeadlySignal("SEGV".into()), 1),
        ("shared_lib", ReportKind::DataRace, 1),
        ("shared_lib_full_paths", ReportKind::DataRace, 1),
        ("shared_lib_unsymbolized", ReportKind::DataRace, 1),
        ("line0", ReportKind::DataRace, 1),
        ("line0_unsymbolized", ReportKind::DataRace, 1),
    ];
    for compiler in COMPILERS {
        for (name, kind, count) in expected {
            let path = fixture(&format!("logs/{compiler}/{name}.log"));
            let mut parsed = Vec::new();
            let summary = parse_file(&path, &mut |report| parsed.push(report));
            assert_eq!(parsed.len(), *count, "{compiler}/{name}");
            for report in &parsed {
                assert_eq!(&report.kind, kind, "{compiler}/{name}");
                assert!(report.complete, "{compiler}/{name}");
                assert!(!report.all_stacks().all(|(_, s)| s.frames.is_empty()));
            }
            // Deadly signals end the process before the trailer.
            if !matches!(kind, ReportKind::DeadlySignal(_)) {
                assert_eq!(
                    summary.warnings_reported, *count as u64,
                    "{compiler}/{name}"
                );
            }
        }
    }
}

#[test]
fn race_on_a_global_with_a_held_mutex_and_a_named_thread() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "race_global");
        assert_eq!(report.accesses.len(), 2);
        let locked = report
            .accesses
            .iter()
            .find(|a| !a.mutexes.is_empty())
            .expect("one side holds stats_lock");
        assert_eq!(locked.thread, MAIN_THREAD);
        assert!(locked.mutexes[0].write);
        assert!(report.accesses.iter().all(|a| a.size == Some(8)));
        assert_eq!(report.locations[0].global_name(), Some("hits"));
        assert_eq!(report.mutexes.len(), 1, "the held mutex is described");
        let worker = &report.threads[0];
        assert_eq!(worker.name.as_deref(), Some("w (it's) 1"));
        assert_eq!(worker.parent, Some(MAIN_THREAD));
        let worker_stack = &report
            .accesses
            .iter()
            .find(|a| a.thread == worker.id)
            .unwrap()
            .stack;
        assert_eq!(function_names(worker_stack)[..2], ["record_hit", "worker"]);
        let frame = &worker_stack.frames[0];
        assert!(frame.file.as_deref().unwrap().ends_with("race_global.c"));
        assert_eq!(frame.line, Some(8));
        // gcc's libbacktrace prints no column; llvm-symbolizer does.
        assert_eq!(frame.column.is_some(), compiler == "clang");
        assert_eq!(
            report
                .summary
                .as_deref()
                .map(|s| s.starts_with("data race")),
            Some(true)
        );
    }
}

#[test]
fn atomic_write_against_plain_read() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "race_atomic");
        let kinds: Vec<AccessKind> = report.accesses.iter().map(|a| a.kind).collect();
        assert!(
            kinds.contains(&AccessKind::AtomicWrite),
            "{compiler}: {kinds:?}"
        );
        assert!(kinds.contains(&AccessKind::Read), "{compiler}: {kinds:?}");
        assert!(report.accesses.iter().any(|a| a.previous));
    }
}

#[test]
fn heap_block_with_its_allocation_stack() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "race_heap");
        let Location::Heap {
            size,
            thread,
            stack,
            object,
            ..
        } = &report.locations[0]
        else {
            panic!("{compiler}: {:?}", report.locations);
        };
        assert_eq!(
            (*size, *thread, object.as_str()),
            (16, MAIN_THREAD, "heap block")
        );
        assert!(
            function_names(stack).contains(&"table_new"),
            "{compiler}: {stack:?}"
        );
        assert_eq!(report.threads.len(), 2);
    }
}

#[test]
fn stack_tls_and_fd_locations() {
    for compiler in COMPILERS {
        let races = reports(compiler, "race_stack_tls");
        assert!(matches!(
            races[0].locations[0],
            Location::Stack {
                thread: MAIN_THREAD
            }
        ));
        assert!(races[1].locations.iter().any(|l| matches!(
            l,
            Location::Tls {
                thread: MAIN_THREAD
            }
        )));
        let fd = only_report(compiler, "race_fd");
        let Location::Fd {
            fd,
            destroyed,
            stack,
            ..
        } = &fd.locations[0]
        else {
            panic!("{compiler}: {:?}", fd.locations);
        };
        assert_eq!((*fd, *destroyed), (4, false));
        assert_eq!(function_names(stack)[0], "pipe");
    }
}

#[test]
fn use_after_free_shows_the_free() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "use_after_free");
        let free = report.accesses.iter().find(|a| a.previous).unwrap();
        assert_eq!(function_names(&free.stack)[0], "free");
        // Only gcc's older runtime still prints `As if synchronized via sleep:`.
        assert_eq!(report.sleep.is_some(), compiler == "gcc");
    }
}

#[test]
fn lock_order_inversion_with_both_stacks_per_edge() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "lock_order");
        assert_eq!(report.lock_cycle.len(), 2);
        assert!(report.lock_cycle.iter().all(|m| m.address.is_some()));
        assert_eq!(report.lock_edges.len(), 2);
        for edge in &report.lock_edges {
            assert_ne!(edge.acquired, edge.held);
            assert!(edge.previous_stack.is_some(), "second_deadlock_stack=1");
            assert!(!edge.stack.frames.is_empty());
        }
        assert_eq!(report.threads.len(), 2);
    }
}

#[test]
fn thread_leak_signal_and_mutex_misuse_kinds() {
    for compiler in COMPILERS {
        let leak = only_report(compiler, "thread_leak");
        assert_eq!(leak.threads.len(), 1);
        assert!(!leak.threads[0].running);
        assert!(function_names(leak.threads[0].stack.as_ref().unwrap()).contains(&"main"));

        let unsafe_call = only_report(compiler, "signal_unsafe");
        assert_eq!(
            function_names(&unsafe_call.stacks[0])[..2],
            ["malloc", "on_usr1"]
        );

        let errno = only_report(compiler, "signal_errno");
        assert!(function_names(&errno.stacks[0]).contains(&"on_usr1"));

        let destroy = only_report(compiler, "mutex_destroy-locked");
        assert_eq!(destroy.stacks.len(), 2, "the destroy `and:` the lock");
        assert_eq!(destroy.mutexes.len(), 1);
        assert_eq!(destroy.locations[0].global_name(), Some("m"));

        for name in ["mutex_double-lock", "mutex_bad-unlock", "mutex_read-lock"] {
            let report = only_report(compiler, name);
            assert_eq!(report.stacks.len(), 1, "{compiler}/{name}");
            assert_eq!(report.mutexes.len(), 1, "{compiler}/{name}");
        }
    }
}

#[test]
fn deadly_signal() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "segv");
        let crash = report.crash.as_ref().unwrap();
        assert_eq!(crash.address, Some(8));
        assert_eq!(crash.access.as_deref(), Some("WRITE"));
        assert_eq!(crash.hints, ["address points to the zero page."]);
        assert_eq!(function_names(&report.stacks[0])[0], "follow");
        assert!(report.summary.as_deref().unwrap().starts_with("SEGV"));
    }
}

#[test]
fn cpp_symbols_and_inlined_frames() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "race_cpp");
        let names = function_names(&report.accesses[0].stack);
        assert!(
            names.contains(&"shop::Basket<long>::operator+=(long const&)"),
            "{compiler}: {names:?}"
        );
    }
}

#[test]
fn full_module_paths_from_a_custom_stack_trace_format() {
    for compiler in COMPILERS {
        let report = only_report(compiler, "shared_lib_full_paths");
        let top = &report.accesses[0].stack.frames[0];
        let module = top.module.as_deref().unwrap();
        assert!(
            module.starts_with('/') && module.ends_with("/librace.so"),
            "{module}"
        );
        assert_eq!(top.function.as_deref(), Some("cache_insert"));
    }
}

/// The unsymbolized run and the symbolized one come from the same build: resolving the
/// offsets with addr2line must give what TSan's own symbolizer printed.
#[test]
fn addr2line_resolves_unsymbolized_frames_like_tsan_did() {
    for compiler in COMPILERS {
        let symbolizer =
            Symbolizer::new(vec![fixture(&format!("bin/{compiler}"))]).without_llvm_symbolizer();
        let mut raw = only_report(compiler, "shared_lib_unsymbolized");
        let top = &raw.accesses[0].stack.frames[0];
        assert_eq!((top.function.as_deref(), top.file.as_deref()), (None, None));
        assert!(symbolizer.symbolize_report(&mut raw) > 0, "{compiler}");

        let printed = only_report(compiler, "shared_lib");
        for access in &raw.accesses {
            let resolved = &access.stack.frames[0];
            assert!(resolved.symbolized);
            let same_offset = printed
                .accesses
                .iter()
                .flat_map(|a| &a.stack.frames)
                .find(|f| f.offset == resolved.offset && f.module == resolved.module)
                .unwrap_or_else(|| panic!("{compiler}: offset {:?} printed", resolved.offset));
            assert_eq!(resolved.function, same_offset.function, "{compiler}");
            assert_eq!(resolved.line, same_offset.line, "{compiler}");
            assert_eq!(
                Path::new(resolved.file.as_deref().unwrap()).file_name(),
                Path::new(same_offset.file.as_deref().unwrap()).file_name()
            );
        }
    }
}

/// The `pick` frame of each access stack of the clang run: TSan printed it with its file
/// and no line, since clang put the merged call instruction on line 0.
fn pick_frames(report: &Report) -> Vec<&tsan_parse::Frame> {
    report
        .accesses
        .iter()
        .map(|a| &a.stack.frames[1])
        .inspect(|f| assert_eq!(f.function.as_deref(), Some("pick")))
        .collect()
}

#[test]
fn a_frame_on_line_zero_gets_the_nearest_earlier_line_marked_approximate() {
    let symbolizer = Symbolizer::new(vec![fixture("bin/clang")]).without_llvm_symbolizer();
    let mut printed = only_report("clang", "line0");
    for pick in pick_frames(&printed) {
        assert!(pick.file.as_deref().unwrap().ends_with("shared_line0.c"));
        assert_eq!((pick.line, pick.offset), (None, Some(0x1161)));
    }
    assert_eq!(symbolizer.symbolize_report(&mut printed), 2);
    // The line table's last row of shared_line0.c before 0x1161 is line 8 (`if (x > 3)`).
    for pick in pick_frames(&printed) {
        assert_eq!((pick.line, pick.column), (Some(8), None));
        assert!(pick.line_approximate && !pick.symbolized);
        assert!(pick
            .source_location()
            .unwrap()
            .ends_with("shared_line0.c:8 (approximate line)"));
        assert_eq!(pick.printed_line(), None);
    }
    let exact: Vec<&tsan_parse::Frame> = printed
        .all_stacks()
        .flat_map(|(_, s)| &s.frames)
        .filter(|f| f.line.is_some() && f.function.as_deref() != Some("pick"))
        .collect();
    assert!(!exact.is_empty() && exact.iter().all(|f| !f.line_approximate));

    // Unsymbolized, addr2line finds line 0 for the same offset and falls back the same way.
    let mut raw = only_report("clang", "line0_unsymbolized");
    assert!(symbolizer.symbolize_report(&mut raw) > 0);
    for pick in pick_frames(&raw) {
        assert_eq!(pick.line, Some(8));
        assert!(pick.line_approximate && pick.symbolized);
    }
}

#[test]
fn gcc_gives_the_same_call_its_own_lines() {
    let symbolizer = Symbolizer::new(vec![fixture("bin/gcc")]).without_llvm_symbolizer();
    let mut printed = only_report("gcc", "line0");
    assert_eq!(symbolizer.symbolize_report(&mut printed), 0);
    let mut lines: Vec<Option<u32>> = pick_frames(&printed).iter().map(|f| f.line).collect();
    lines.sort();
    assert_eq!(lines, [Some(9), Some(11)]);
}

#[test]
fn symbolization_names_unnamed_globals_and_skips_other_builds() {
    // gcc prints `global '<null>' … (librace.so+0x4034)` without a symbolizer.
    let symbolizer = Symbolizer::new(vec![fixture("bin/gcc")]).without_llvm_symbolizer();
    let mut report = only_report("gcc", "shared_lib_unsymbolized");
    symbolizer.symbolize_report(&mut report);
    assert!(report
        .locations
        .iter()
        .any(|l| l.global_name() == Some("cache_size")));

    // clang prints build ids: the gcc build of librace.so must not be used for them.
    let mut clang = only_report("clang", "shared_lib_unsymbolized");
    assert_eq!(symbolizer.symbolize_report(&mut clang), 0);
}

#[test]
fn ci_timestamps_and_interleaved_output_are_ignored() {
    let stamped = fs::read_to_string(fixture("logs/derived/ci_timestamps.log")).unwrap();
    assert!(stamped.starts_with("2024-"));
    let parsed = parse_str(&stamped);
    let plain: Vec<Report> = ["race_heap", "segv"]
        .iter()
        .flat_map(|name| reports("clang", name))
        .collect();
    assert_eq!(parsed.len(), plain.len());
    for (stamped, plain) in parsed.iter().zip(&plain) {
        assert_eq!(stamped.kind, plain.kind);
        assert_eq!(stamped.accesses, plain.accesses);
        assert_eq!(stamped.locations, plain.locations);
        assert_eq!(stamped.stacks, plain.stacks);
        assert_eq!(stamped.complete, plain.complete);
    }
}

#[test]
fn truncated_logs_keep_the_cut_report_as_partial() {
    let cut = reports("derived", "truncated");
    assert_eq!(cut.len(), 1);
    assert!(!cut[0].complete);
    assert!(!cut[0].accesses.is_empty());

    let second_cut = reports("derived", "truncated_second");
    assert_eq!(second_cut.len(), 2);
    assert!(second_cut[0].complete);
    assert!(!second_cut[1].complete);
    assert!(second_cut[1].source.byte_offset > second_cut[0].source.byte_offset);
}

#[test]
fn sources_point_at_the_header_line() {
    for compiler in COMPILERS {
        let path = fixture(&format!("logs/{compiler}/race_stack_tls.log"));
        let text = fs::read_to_string(&path).unwrap();
        for report in reports(compiler, "race_stack_tls") {
            assert_eq!(report.source.file, path);
            let at = &text[report.source.byte_offset as usize..];
            assert!(
                at.starts_with("WARNING: ThreadSanitizer: data race"),
                "{at:.40}"
            );
            let line = text[..report.source.byte_offset as usize]
                .matches('\n')
                .count()
                + 1;
            assert_eq!(report.source.line, line as u64);
        }
    }
}

#[test]
fn python_extension_frames_are_classified() {
    let classifier = Classifier::new(vec!["racy".into()], vec![]);
    let mut found = 0;
    for mut report in ["clang_stress_1", "clang_stress_2", "clang_stress_3"]
        .iter()
        .flat_map(|name| reports("pyext", name))
        .collect::<Vec<_>>()
    {
        classifier.classify_report(&mut report);
        let top = &report.accesses[0].stack;
        assert!(top
            .frames
            .iter()
            .any(|f| f.origin == FrameOrigin::Extension));
        assert!(top.frames.iter().any(|f| f.origin == FrameOrigin::Cpython
            && f.function.as_deref() == Some("_PyEval_EvalFrameDefault")));
        let creation = report.threads[0].stack.as_ref().unwrap();
        assert_eq!(
            creation.frames[0].origin,
            FrameOrigin::TsanRuntime,
            "pthread_create interceptor"
        );
        found += 1;
    }
    assert!(found >= 2);
}
