//! The parser never panics, whatever it is fed, and a cut log keeps the cut report.

use std::path::Path;

use proptest::prelude::*;
use std::io::BufReader;

use tsan_parse::{parse_reader, parse_str, Classifier, ClusterOptions, Report, MAX_LINE};

fn parse_with_buffer(log: &str, capacity: usize) -> Vec<Report> {
    parse_reader(BufReader::with_capacity(capacity, log.as_bytes()), "")
        .collect::<std::io::Result<_>>()
        .unwrap()
}

fn sample_log() -> String {
    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    [
        "gcc/lock_order.log",
        "clang/race_heap.log",
        "clang/segv.log",
        "gcc/mutex_destroy-locked.log",
    ]
    .iter()
    .map(|name| std::fs::read_to_string(logs.join(name)).unwrap())
    .collect()
}

/// Report starts (`WARNING: ThreadSanitizer:` or `==PID==ERROR: ThreadSanitizer:`) fully
/// inside `text`.
fn headers_in(text: &str) -> usize {
    text.matches("WARNING: ThreadSanitizer:").count()
        + text.matches("ERROR: ThreadSanitizer:").count()
}

/// Lines that report grammar is made of, to build plausible garbage from.
const PIECES: &[&str] = &[
    "==================\n",
    "WARNING: ThreadSanitizer: data race (pid=1)\n",
    "WARNING: ThreadSanitizer: ",
    "==7==ERROR: ThreadSanitizer: SEGV on unknown address 0x (pc",
    "  Write of size 8 at 0x7b by thread T1",
    "  Previous atomic read of size  at  by main thread (mutexes: write M",
    "    #0 f a.c:1:2 (m.so+0x1) (BuildId: ",
    "    #1 <null> <null> (",
    "    #",
    "  Location is global '",
    "  Location is heap block of size 16 at 0x1 allocated by thread T",
    "  Location is file descriptor ",
    "  Mutex M",
    "  Mutex M1 acquired here while holding mutex M",
    "  Thread T1 'x (' (tid=",
    "  Cycle in lock order graph: M0 (0x1) => M",
    "  and:\n",
    "SUMMARY: ThreadSanitizer: ",
    "ThreadSanitizer: reported 99999999999999999999 warnings\n",
    "2024-05-01T12:34:56.1234567Z ",
    "[failed to restore the stack]\n",
    "\u{1b}[1m\u{1b}[31m",
    "\n",
    "\r\n",
    "é\u{0}\u{7f}",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        let reports = parse_str(&text);
        tsan_parse::cluster(reports, &Classifier::default(), ClusterOptions::default());
    }

    #[test]
    fn shuffled_report_pieces_never_panic(pieces in proptest::collection::vec(0..PIECES.len(), 0..200)) {
        let text: String = pieces.iter().map(|i| PIECES[*i]).collect();
        let reports = parse_str(&text);
        prop_assert!(reports.len() <= headers_in(&text));
        tsan_parse::cluster(reports, &Classifier::default(), ClusterOptions::default());
    }

    #[test]
    fn lines_straddling_the_read_buffer_parse_the_same(capacity in 1usize..300) {
        let log = sample_log();
        prop_assert_eq!(parse_with_buffer(&log, capacity), parse_str(&log));
    }

    #[test]
    fn a_cut_log_keeps_every_started_report(cut in 0usize..10_000) {
        let log = sample_log();
        let cut = (cut * log.len() / 10_000).min(log.len());
        let cut = (0..=cut).rev().find(|i| log.is_char_boundary(*i)).unwrap();
        let prefix = &log[..cut];
        let whole = parse_str(&log);
        let reports = parse_str(prefix);
        prop_assert_eq!(reports.len(), headers_in(prefix));
        for (i, report) in reports.iter().enumerate() {
            prop_assert_eq!(report.source.byte_offset, whole[i].source.byte_offset);
            // Only the last report can be cut; the ones before it are whole.
            if i + 1 < reports.len() {
                prop_assert_eq!(report, &whole[i]);
            } else if report != &whole[i] {
                prop_assert!(!report.complete, "a cut report is marked partial");
            }
        }
    }
}

#[test]
fn overlong_lines_are_cut_without_losing_the_reports_around_them() {
    let log = sample_log();
    let noise = format!("{}\n", "x".repeat(3 * MAX_LINE));
    let with_noise = format!("{noise}{log}{noise}");
    let reports = parse_with_buffer(&with_noise, 4096);
    let plain = parse_str(&log);
    assert_eq!(reports.len(), plain.len());
    for (noisy, plain) in reports.iter().zip(&plain) {
        assert_eq!(
            noisy.source.byte_offset,
            plain.source.byte_offset + noise.len() as u64
        );
        assert_eq!(noisy.source.line, plain.source.line + 1);
        assert_eq!(noisy.accesses, plain.accesses);
    }
}
