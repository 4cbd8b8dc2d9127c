//! `ftreview corpus run`: one shard's targets, one after the other, each reviewed by a child
//! `ftreview run` (this same executable) into `SHARD_DIR/<slug>/`. A child that crashes or
//! fails only fails its own target: its exit status and the end of its output are kept as the
//! target's error, and the shard goes on. A target whose run directory holds a finished
//! review is skipped, so rerunning the same command resumes an interrupted shard.
//!
//! Ctrl-C or SIGTERM is passed on to the running child as one Ctrl-C (it keeps what it
//! collected), and the shard stops after it.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::list::{target_key, Entry};
use super::merge::first_line;
use super::shard::{
    is_finished, read_results, write_json, Attempt, PlannedTarget, ShardRecord, ATTEMPT_FILE,
    LOG_FILE, SHARD_FILE,
};
use super::{PlanInputs, Planned};
use crate::events::format_secs;
use crate::exit::Outcome;
use crate::target::TargetSpec;

/// Lines of the child's output kept in attempt.json.
const TAIL_LINES: usize = 20;

#[derive(Debug, Args)]
pub struct ShardArgs {
    /// This shard and the number of shards, 1-based: `2/8`. In a Kubernetes Indexed Job:
    /// `--shard $((JOB_COMPLETION_INDEX + 1))/8`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: (usize, usize),
    /// The shard's directory: shard.json and one run directory per target
    /// (default: ./ftreview-corpus/shard-K-of-N).
    #[arg(long, short = 'o', value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    inputs: PlanInputs,
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((k, n)) if (1..=n).contains(&k) => Ok((k, n)),
        _ => Err(format!(
            "`{text}` is not a shard: write K/N with 1 <= K <= N, e.g. 2/8"
        )),
    }
}

pub fn run(args: ShardArgs) -> anyhow::Result<Outcome> {
    let (shard, of) = args.shard;
    let planned = args.inputs.plan(of)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("ftreview-corpus/shard-{shard}-of-{of}")));
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = fs::canonicalize(&out)?;
    write_json(&out.join(SHARD_FILE), &shard_record(&planned, shard, of))?;
    let exe = std::env::current_exe().context("cannot find this ftreview executable")?;
    let entries: Vec<&Entry> = planned.matrix.include[shard - 1]
        .targets
        .iter()
        .filter_map(|t| planned.list.entries.iter().find(|e| &e.target == t))
        .collect();
    eprintln!(
        "shard {shard}/{of}: {} target(s) into {}",
        entries.len(),
        out.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(review_shard(&exe, &entries, &out))
}

fn shard_record(planned: &Planned, shard: usize, of: usize) -> ShardRecord {
    let targets = planned.matrix.include.iter().flat_map(|plan| {
        plan.targets.iter().filter_map(move |target| {
            let entry = planned.list.entries.iter().find(|e| &e.target == target)?;
            let (name, version) = match &entry.spec {
                TargetSpec::Pypi { name, version } => (name.clone(), version.clone()),
                _ => (entry.slug(), None),
            };
            Some(PlannedTarget {
                target: entry.target.clone(),
                line: entry.line,
                options: entry.options.tokens(),
                key: target_key(&entry.spec),
                slug: entry.slug(),
                name,
                version,
                shard: plan.shard,
            })
        })
    });
    let mut targets: Vec<PlannedTarget> = targets.collect();
    targets.sort_by_key(|t| t.line);
    ShardRecord {
        list: planned.list.path.clone(),
        shard,
        of,
        run_options: planned.shard_options.tokens(),
        targets,
    }
}

/// Ctrl-C and SIGTERM, caught while the shard runs.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

async fn review_shard(exe: &Path, entries: &[&Entry], out: &Path) -> anyhow::Result<Outcome> {
    let mut signals = Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    let (mut reviewed, mut skipped, mut failed) = (0, 0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let tag = format!("[{}/{}] {}", i + 1, entries.len(), entry.target);
        let dir = out.join(entry.slug());
        if is_finished(&dir) {
            eprintln!(
                "{tag}: skipped, already reviewed in {} (a finished run)",
                dir.display()
            );
            skipped += 1;
            continue;
        }
        if dir.exists() {
            eprintln!("{tag}: its earlier run did not finish; reviewing it again");
            fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        eprintln!("{tag}: reviewing into {}", dir.display());
        let attempt = review_target(exe, entry, &dir, &mut signals).await?;
        write_json(&dir.join(ATTEMPT_FILE), &attempt)?;
        eprintln!("{tag}: {}", ending(&attempt, &dir));
        if attempt.interrupted {
            bail!(
                "interrupted during {}: rerun the same command to finish the shard (reviewed targets are kept and skipped)",
                entry.target
            );
        }
        match attempt.error {
            Some(_) => failed += 1,
            None => reviewed += 1,
        }
    }
    eprintln!(
        "shard done: {reviewed} reviewed, {skipped} skipped (reviewed earlier), {failed} without results"
    );
    Ok(if failed > 0 {
        Outcome::HarnessError
    } else {
        Outcome::Clean
    })
}

/// One line on how a target's review ended.
fn ending(attempt: &Attempt, dir: &Path) -> String {
    let time = format_secs(attempt.wall_secs);
    if let Some(error) = &attempt.error {
        return format!("error: {error} ({time})");
    }
    match read_results(dir) {
        Some(results) => match &results.run_status.stopped_by {
            Some(stopped) => format!("error: {} ({time})", first_line(stopped)),
            None => format!("{} ({time})", results.verdict.level.label()),
        },
        None => format!("no readable results.json ({time})"),
    }
}

/// Runs `ftreview run TARGET OPTIONS -o DIR` as a child in its own process group.
async fn review_target(
    exe: &Path,
    entry: &Entry,
    dir: &Path,
    signals: &mut Signals,
) -> anyhow::Result<Attempt> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = dir.join(LOG_FILE);
    let log = fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut argv = vec!["run".to_string(), entry.target.clone()];
    argv.extend(entry.run_options.tokens());
    argv.extend(["-o".to_string(), dir.display().to_string()]);
    let started = Instant::now();
    let child = tokio::process::Command::new(exe)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn();
    let (status, interrupted) = match child {
        Ok(mut child) => wait_passing_on_signals(&mut child, signals).await?,
        Err(err) => bail!("cannot start {}: {err}", exe.display()),
    };
    let output_tail = tail(&log_path);
    let error = (!dir.join(ftreview_reports::RESULTS_FILE).is_file())
        .then(|| child_error(status, &output_tail));
    Ok(Attempt {
        argv,
        exit_code: status.code(),
        signal: status.signal(),
        wall_secs: started.elapsed().as_secs_f64(),
        interrupted,
        error,
        output_tail,
    })
}

async fn wait_passing_on_signals(
    child: &mut tokio::process::Child,
    signals: &mut Signals,
) -> anyhow::Result<(ExitStatus, bool)> {
    let mut interrupted = false;
    loop {
        tokio::select! {
            status = child.wait() => return Ok((status?, interrupted)),
            _ = signals.interrupt.recv() => interrupted = true,
            _ = signals.terminate.recv() => interrupted = true,
        }
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on the child's pid; it is still ours (not yet waited for).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        }
    }
}

/// Why a child left no results, in one line: its signal, or its exit code and last error line.
fn child_error(status: ExitStatus, output_tail: &str) -> String {
    if let Some(signal) = status.signal() {
        // SAFETY: strsignal returns a pointer to a static or thread-local string.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) };
        return format!(
            "ftreview run was killed by signal {signal} ({}) before writing results.json",
            name.to_string_lossy()
        );
    }
    let lines: Vec<&str> = output_tail
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let last = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .or(lines.last().copied())
        .unwrap_or("no output");
    format!(
        "ftreview run exited with {} before writing results.json: {last}",
        status.code().unwrap_or(-1)
    )
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_k_of_n() {
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
        assert!(parse_shard("0/8").unwrap_err().contains("1 <= K <= N"));
        assert!(parse_shard("9/8").is_err());
        assert!(parse_shard("2").is_err());
    }

    #[test]
    fn a_child_without_results_is_described_by_its_signal_or_last_error() {
        let killed = ExitStatus::from_raw(libc::SIGSEGV);
        assert!(child_error(killed, "").contains("signal 11"));
        let failed = ExitStatus::from_raw(2 << 8);
        let message = child_error(failed, "progress\nerror: the registry is broken\n\n");
        assert_eq!(
            message,
            "ftreview run exited with 2 before writing results.json: the registry is broken"
        );
    }
}
