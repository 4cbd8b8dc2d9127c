//! Child processes for the runner: each runs in its own process group (so a timeout or Ctrl-C
//! kills the whole tree, not just the direct child), with output captured to a kept log file,
//! a per-step timeout, and hang evidence (native stacks from gdb, Python stacks from
//! faulthandler) collected before the group is killed. Every step is appended to the run's
//! command journal so a run can be replayed by hand.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::watch;
use tsan_parse::Phase;

/// A command to run, with everything needed to rerun it by hand.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Short label used in progress output and the journal (e.g. `suite`, `install wheel`).
    pub label: String,
    /// The run phase the step belongs to, when it belongs to one.
    pub phase: Option<Phase>,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Inherited variables removed (e.g. `PYTHON_GIL` for the GIL check).
    pub env_remove: Vec<String>,
    /// stdout and stderr both go here (stderr only, when `stdout` is set).
    pub log: PathBuf,
    /// A separate file for stdout, for steps whose stdout is data (JSON).
    pub stdout: Option<PathBuf>,
    #[serde(skip)]
    pub timeout: Duration,
    /// A file where the process writes the time (Unix seconds) from which it is stuck if it
    /// still runs: its timeout comes then (or soon after the file appeared, if it stays empty).
    #[serde(skip)]
    pub stuck_file: Option<PathBuf>,
    /// TSan's `log_path` prefix for the process: once `<prefix>.<pid>` shows a fatal error
    /// (a deadly signal), the process has `DYING_GRACE` to end before it counts as stuck.
    #[serde(skip)]
    pub tsan_log: Option<PathBuf>,
}

impl Step {
    pub fn new(
        label: impl Into<String>,
        program: impl Into<PathBuf>,
        cwd: &Path,
        log: &Path,
    ) -> Self {
        Step {
            label: label.into(),
            phase: None,
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            env_remove: Vec::new(),
            log: log.to_path_buf(),
            stdout: None,
            timeout: Duration::from_secs(3600),
            stuck_file: None,
            tsan_log: None,
        }
    }

    pub fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    pub fn envs(mut self, vars: &[(String, String)]) -> Self {
        for (k, v) in vars {
            self = self.env(k.clone(), v.clone());
        }
        self
    }

    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.env_remove.push(key.into());
        self
    }

    pub fn stdout_to(mut self, path: &Path) -> Self {
        self.stdout = Some(path.to_path_buf());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Ends the step as timed out once the time written in `path` has come (the process
    /// says when it counts as stuck).
    pub fn stuck_after_time_in(mut self, path: &Path) -> Self {
        self.stuck_file = Some(path.to_path_buf());
        self
    }

    /// Ends the step as timed out `DYING_GRACE` after TSan's log at `prefix.<pid>` reports a
    /// fatal error, if it still runs: a process that crashes under TSan can deadlock in its
    /// own crash handler (TSan's allocator or symbolizer locks), and then it only ever ends at
    /// its timeout.
    pub fn dies_after_tsan_fatal_error_in(mut self, prefix: &Path) -> Self {
        self.tsan_log = Some(prefix.to_path_buf());
        self
    }

    /// The command as a shell line (environment assignments first), for logs and reproducers.
    pub fn shell_line(&self) -> String {
        let mut parts: Vec<String> = self.env_remove.iter().map(|k| format!("-u {k}")).collect();
        parts.extend(
            self.env
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v))),
        );
        let env = if parts.is_empty() {
            String::new()
        } else {
            format!("env {} ", parts.join(" "))
        };
        let mut line = format!(
            "cd {} && {env}{}",
            shell_quote(&self.cwd.to_string_lossy()),
            shell_quote(&self.program.to_string_lossy())
        );
        for arg in &self.args {
            line.push(' ');
            line.push_str(&shell_quote(&arg.to_string_lossy()));
        }
        line
    }
}

/// Quotes a word for a POSIX shell when it needs quoting.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Termination {
    Exited {
        code: i32,
    },
    /// Killed by a signal it raised or received (SIGSEGV, SIGABRT, ...).
    Signaled {
        signal: i32,
    },
    /// Ran past its timeout, or said it was stuck; stacks were collected and the process
    /// group killed.
    TimedOut,
    /// The user pressed Ctrl-C; the process group was killed.
    Interrupted,
}

impl Termination {
    pub fn success(self) -> bool {
        self == Termination::Exited { code: 0 }
    }

    pub fn describe(self) -> String {
        match self {
            Termination::Exited { code } => format!("exit code {code}"),
            Termination::Signaled { signal } => {
                format!("killed by signal {signal} ({})", signal_name(signal))
            }
            Termination::TimedOut => "timed out".to_string(),
            Termination::Interrupted => "interrupted".to_string(),
        }
    }
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "other",
    }
}

/// What a finished step produced.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub label: String,
    pub phase: Option<Phase>,
    pub command: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The variables the step set (on top of the inherited environment).
    pub env: Vec<(String, String)>,
    pub termination: Termination,
    pub seconds: f64,
    pub log: PathBuf,
    /// For a timed-out step: the file holding gdb's native stacks of every process in the group
    /// (Python stacks from faulthandler follow in `log`).
    pub hang_stacks: Option<PathBuf>,
    /// The process ftreview started (0 when unknown); its subprocesses have others.
    pub pid: u32,
}

impl StepResult {
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Runs steps: owns the command journal and the Ctrl-C signal shared by every step of a run.
#[derive(Clone)]
pub struct Runner {
    journal: Arc<Mutex<File>>,
    history: Arc<Mutex<Vec<StepResult>>>,
    cancel: watch::Receiver<bool>,
    /// Prefix for every command (e.g. `setarch x86_64 -R` where TSan needs ASLR off).
    wrapper: Vec<OsString>,
}

impl Runner {
    pub fn new(
        journal_path: &Path,
        cancel: watch::Receiver<bool>,
        wrapper: Vec<OsString>,
    ) -> anyhow::Result<Self> {
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal_path)
            .with_context(|| {
                format!("cannot open the command journal {}", journal_path.display())
            })?;
        Ok(Runner {
            journal: Arc::new(Mutex::new(journal)),
            history: Arc::default(),
            cancel,
            wrapper,
        })
    }

    pub fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Runs a step to completion, timeout or Ctrl-C. Errors only when it cannot start.
    pub async fn run(&self, step: &Step) -> anyhow::Result<StepResult> {
        if let Some(dir) = step.log.parent() {
            fs::create_dir_all(dir)?;
        }
        let log = File::create(&step.log)
            .with_context(|| format!("cannot create {}", step.log.display()))?;
        if let Some(stuck) = &step.stuck_file {
            let _ = fs::remove_file(stuck); // a time left by an earlier run of the step
        }
        let mut command = self.command(step, log)?;
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {} ({})", step.program.display(), step.label))?;
        let pid = child.id().unwrap_or(0) as i32;
        let mut cancel = self.cancel.clone();
        let mut hang_stacks = None;
        let termination = tokio::select! {
            status = child.wait() => termination_of(status?),
            _ = timed_out(step, pid) => {
                hang_stacks = Some(collect_hang_evidence(pid, &step.log).await);
                kill_group(pid);
                let _ = child.wait().await;
                Termination::TimedOut
            }
            _ = cancelled(&mut cancel) => {
                kill_group(pid);
                let _ = child.wait().await;
                Termination::Interrupted
            }
        };
        // Grandchildren left behind by a finished leader (daemon helpers) die with the run.
        kill_group(pid);
        let result = StepResult {
            label: step.label.clone(),
            phase: step.phase,
            command: step.shell_line(),
            argv: std::iter::once(step.program.as_os_str())
                .chain(step.args.iter().map(|a| a.as_os_str()))
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            cwd: step.cwd.clone(),
            env: step.env.clone(),
            termination,
            seconds: started.elapsed().as_secs_f64(),
            log: step.log.clone(),
            hang_stacks,
            pid: pid as u32,
        };
        self.journal(&result);
        Ok(result)
    }

    fn command(&self, step: &Step, log: File) -> anyhow::Result<Command> {
        let (program, mut args) = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut args = rest.to_vec();
                args.push(step.program.clone().into_os_string());
                (PathBuf::from(first), args)
            }
            None => (step.program.clone(), Vec::new()),
        };
        args.extend(step.args.iter().cloned());
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&step.cwd)
            .stdin(Stdio::null())
            .stdout(match &step.stdout {
                Some(path) => File::create(path)?,
                None => log.try_clone()?,
            })
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        for key in &step.env_remove {
            command.env_remove(key);
        }
        command.envs(step.env.iter().map(|(k, v)| (k, v)));
        Ok(command)
    }

    fn journal(&self, result: &StepResult) {
        let line = serde_json::to_string(result).unwrap_or_default();
        if let Ok(mut journal) = self.journal.lock() {
            let _ = writeln!(journal, "{line}");
        }
        if let Ok(mut history) = self.history.lock() {
            history.push(result.clone());
        }
    }

    /// Every step run so far, in completion order.
    pub fn history(&self) -> Vec<StepResult> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// The step's timeout, the time its stuck file names, or the end of its grace after a fatal
/// TSan error, whichever comes first.
async fn timed_out(step: &Step, pid: i32) {
    let stuck = async {
        let Some(path) = &step.stuck_file else {
            return std::future::pending::<()>().await;
        };
        while !stuck_by(path, SystemTime::now()) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let dying = async {
        let Some(prefix) = &step.tsan_log else {
            return std::future::pending::<()>().await;
        };
        let log = PathBuf::from(format!("{}.{pid}", prefix.display()));
        let mut read = 0;
        while !fatal_error_since(&log, &mut read) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(DYING_GRACE).await;
    };
    tokio::select! {
        _ = tokio::time::sleep(step.timeout) => {}
        _ = stuck => {}
        _ = dying => {}
    }
}

/// How long a process whose TSan log reported a fatal error may take to finish its report
/// and exit (symbolizing the crashing stack takes a second or two).
const DYING_GRACE: Duration = Duration::from_secs(10);

/// Whether TSan's log shows a fatal error (`==PID==ERROR: ThreadSanitizer: SEGV on …`) in
/// what was appended since `read` bytes, which it moves on.
fn fatal_error_since(log: &Path, read: &mut u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    const MARKER: &[u8] = tsan_parse::FATAL_ERROR;
    let Ok(mut file) = File::open(log) else {
        return false;
    };
    // Back up by the marker's length, so one split across two reads is still seen.
    let from = read.saturating_sub(MARKER.len() as u64);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut tail).is_err() {
        return false;
    }
    *read = from + tail.len() as u64;
    tail.windows(MARKER.len()).any(|w| w == MARKER)
}

/// How long a stuck file may stay empty while the process writes it: one still empty then
/// was created by a process that could not finish a few bytes' write (its allocator spinning
/// in a heap a race corrupted), and that process is stuck.
const UNWRITTEN_STUCK_FILE: Duration = Duration::from_secs(2);

/// Whether the stuck file holds a time that has come by `now`, or was left empty.
fn stuck_by(path: &Path, now: SystemTime) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    if text.is_empty() {
        let created = fs::metadata(path).and_then(|m| m.modified());
        return created.is_ok_and(|at| at + UNWRITTEN_STUCK_FILE <= now);
    }
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    text.split_whitespace()
        .next()
        .and_then(|t| t.parse::<f64>().ok())
        .is_some_and(|at| at <= secs)
}

async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    while !*cancel.borrow() {
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn termination_of(status: std::process::ExitStatus) -> Termination {
    match (status.code(), status.signal()) {
        (Some(code), _) => Termination::Exited { code },
        (None, Some(signal)) => Termination::Signaled { signal },
        (None, None) => Termination::Exited { code: -1 },
    }
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Before killing a hung group: native stacks of every thread of every process in it (gdb),
/// then SIGABRT so faulthandler (enabled through PYTHONFAULTHANDLER) prints the Python stacks
/// into the step's log.
async fn collect_hang_evidence(pgid: i32, log: &Path) -> PathBuf {
    let stacks = log.with_extension("stacks.txt");
    let mut text = String::new();
    for pid in processes_in_group(pgid) {
        text.push_str(&format!(
            "=== native stacks of pid {pid}: {}\n",
            command_line(pid)
        ));
        text.push_str(&native_stacks(pid).await);
        text.push('\n');
    }
    let _ = fs::write(&stacks, text);
    // SAFETY: see kill_group.
    unsafe {
        libc::kill(-pgid, libc::SIGABRT);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stacks
}

async fn native_stacks(pid: i32) -> String {
    let gdb = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-nx",
            "-ex",
            "thread apply all bt",
        ])
        .stdin(Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(60), gdb).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(Err(err)) => {
            format!("(gdb could not run: {err}; install gdb for native stacks of hangs)\n")
        }
        Err(_) => "(gdb did not finish within 60 s)\n".to_string(),
    }
}

/// Pids whose process group is `pgid`, read from /proc.
pub fn processes_in_group(pgid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![pgid];
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_group_of(*pid) == Some(pgid))
        .collect();
    pids.sort_unstable();
    pids
}

fn process_group_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(2)?.parse().ok()
}

fn command_line(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(dir: &Path) -> (Runner, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            Runner::new(&dir.join("commands.jsonl"), rx, Vec::new()).unwrap(),
            tx,
        )
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("a/b-c.py"), "a/b-c.py");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }

    #[tokio::test]
    async fn captures_output_exit_code_and_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _tx) = runner(dir.path());
        let step = Step::new("echo", "/bin/sh", dir.path(), &dir.path().join("out.log"))
            .args(["-c", "echo hello $X; echo oops >&2; exit 3"])
            .env("X", "world");
        let result = runner.run(&step).await.unwrap();
        assert_eq!(result.termination, Termination::Exited { code: 3 });
        assert_eq!(
            fs::read_to_string(&result.log).unwrap(),
            "hello world\noops\n"
        );
        let journal = fs::read_to_string(dir.path().join("commands.jsonl")).unwrap();
        assert!(journal.contains("X=world"), "{journal}");
    }

    #[tokio::test]
    async fn a_crash_is_reported_with_its_signal() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _tx) = runner(dir.path());
        let step = Step::new("segv", "/bin/sh", dir.path(), &dir.path().join("out.log"))
            .args(["-c", "kill -SEGV $$"]);
        let result = runner.run(&step).await.unwrap();
        assert_eq!(
            result.termination,
            Termination::Signaled {
                signal: libc::SIGSEGV
            }
        );
    }

    #[tokio::test]
    async fn a_process_that_says_it_is_stuck_times_out_at_once_with_its_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _tx) = runner(dir.path());
        let stuck = dir.path().join("stuck");
        // Stuck from 1 s on, written at once.
        let script = format!(
            "echo $(( $(date +%s) + 1 )) > {}; sleep 60",
            stuck.display()
        );
        let step = Step::new(
            "stuck",
            "/bin/sh",
            dir.path(),
            &dir.path().join("stuck.log"),
        )
        .args(["-c", &script])
        .timeout(Duration::from_secs(60))
        .stuck_after_time_in(&stuck);
        let result = runner.run(&step).await.unwrap();
        assert_eq!(result.termination, Termination::TimedOut);
        assert!(result.seconds < 30.0, "{}", result.seconds);
        let stacks = fs::read_to_string(result.hang_stacks.unwrap()).unwrap();
        assert!(stacks.contains("=== native stacks of pid"), "{stacks}");
    }

    #[test]
    fn the_stuck_time_counts_once_it_has_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stuck");
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert!(!stuck_by(&path, at(100)), "no file, not stuck");
        fs::write(&path, "100.5 exiting\n").unwrap();
        assert!(!stuck_by(&path, at(100)));
        assert!(stuck_by(&path, at(101)));
        fs::write(&path, "soon").unwrap();
        assert!(!stuck_by(&path, at(101)), "no time, not stuck");
    }

    #[tokio::test]
    async fn a_process_that_outlives_its_fatal_tsan_error_times_out_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _tx) = runner(dir.path());
        let prefix = dir.path().join("tsan");
        // A data race is no reason to stop; a deadly signal the process does not die of is.
        let script = format!(
            "echo '==1==WARNING: ThreadSanitizer: data race' > {0}.$$; sleep 1; \
             echo '==1==ERROR: ThreadSanitizer: SEGV on unknown address 0x0' >> {0}.$$; sleep 600",
            prefix.display()
        );
        let step = Step::new("dying", "/bin/sh", dir.path(), &dir.path().join("out.log"))
            .args(["-c", &script])
            .dies_after_tsan_fatal_error_in(&prefix)
            .timeout(Duration::from_secs(1200));
        let result = runner.run(&step).await.unwrap();
        assert_eq!(result.termination, Termination::TimedOut);
        assert!(result.hang_stacks.is_some(), "{result:?}");
    }

    #[test]
    fn a_fatal_error_is_seen_in_what_was_appended_even_across_two_reads() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tsan.7");
        let mut read = 0;
        assert!(!fatal_error_since(&log, &mut read), "no log yet");
        fs::write(
            &log,
            "==7==WARNING: ThreadSanitizer: data race\n==7==ERROR: Thread",
        )
        .unwrap();
        assert!(!fatal_error_since(&log, &mut read));
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        write!(file, "Sanitizer: SEGV on unknown address").unwrap();
        assert!(fatal_error_since(&log, &mut read));
    }

    #[test]
    fn a_stuck_file_left_empty_counts_once_its_write_is_overdue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stuck");
        fs::write(&path, "").unwrap();
        let created = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!stuck_by(&path, created), "a write may be under way");
        assert!(!stuck_by(&path, created + Duration::from_secs(1)));
        assert!(stuck_by(&path, created + UNWRITTEN_STUCK_FILE));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_and_keeps_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _tx) = runner(dir.path());
        let pid_file = dir.path().join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; sleep 60", pid_file.display());
        let step = Step::new("hang", "/bin/sh", dir.path(), &dir.path().join("hang.log"))
            .args(["-c", &script])
            .timeout(Duration::from_millis(300));
        let result = runner.run(&step).await.unwrap();
        assert_eq!(result.termination, Termination::TimedOut);
        let stacks = fs::read_to_string(result.hang_stacks.unwrap()).unwrap();
        assert!(stacks.contains("=== native stacks of pid"), "{stacks}");
        let grandchild = fs::read_to_string(&pid_file).unwrap().trim().to_string();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let state = fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        let alive = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        assert!(!alive, "the grandchild outlived the timeout: {state}");
    }

    #[tokio::test]
    async fn ctrl_c_interrupts_a_running_step() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, tx) = runner(dir.path());
        let step =
            Step::new("sleep", "/bin/sleep", dir.path(), &dir.path().join("s.log")).arg("30");
        let handle = tokio::spawn(async move { runner.run(&step).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(true).unwrap();
        let result = handle.await.unwrap();
        assert_eq!(result.termination, Termination::Interrupted);
    }
}
