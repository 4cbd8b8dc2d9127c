//! The streaming report parser: reads a log line by line and yields each report as soon as
//! its closing line (or the next report, or the end of input) is seen. Memory is bounded by
//! one report plus one line (lines are capped at [`MAX_LINE`]).

use std::io::{self, BufRead};
use std::path::PathBuf;

use memchr::{memchr, memmem};

use crate::lines::{
    access_prefix, find, leading_u64, parse_access, parse_cycle, parse_frame_into, parse_hex,
    parse_location, parse_mutex_line, parse_thread_line, strip_ansi, strip_timestamp, text,
    trim_end, trim_start, MutexLine, SharedNames,
};
use crate::model::{Crash, Frame, LockEdge, Mutex, Report, ReportKind, ReportSource, Stack};

/// Longer lines are cut (TSan never prints them; they come from other output in the log).
pub const MAX_LINE: usize = 64 * 1024;

/// Runtime errors kept per log.
pub const MAX_RUNTIME_ERRORS: usize = 16;

const SEPARATOR: &[u8] = b"==================";
// Without the space that follows them: a line cut right after the marker (and trimmed)
// still starts a (partial) report.
const WARNING: &[u8] = b"WARNING: ThreadSanitizer:";
/// Starts a fatal report (a deadly signal, a failed check): the process is dying. Races and
/// other reports are `WARNING:`s.
pub const FATAL_ERROR: &[u8] = b"ERROR: ThreadSanitizer:";
const REPORTED: &[u8] = b"ThreadSanitizer: reported ";

/// Parses reports from `input`, attributing them to `file`.
pub fn parse_reader<R: BufRead>(input: R, file: impl Into<PathBuf>) -> ReportReader<R> {
    ReportReader::new(input, file.into())
}

/// Parses every report of an in-memory log.
pub fn parse_str(log: &str) -> Vec<Report> {
    parse_reader(log.as_bytes(), PathBuf::new())
        .collect::<io::Result<Vec<_>>>()
        .expect("reading from memory cannot fail")
}

/// Where the frames of the next `#N` lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Right after the header: frames start a bare stack.
    Start,
    Bare,
    Access,
    LockEdge,
    LockEdgePrevious,
    Sleep,
    Location,
    Mutex,
    Thread,
    /// A section without a stack (`Location is global …`, `Hint: …`).
    Closed,
}

/// A report being read.
struct Open {
    report: Report,
    section: Section,
    /// Bytes before `WARNING:` on the header line (a constant per-line prefix such as
    /// `[gw0] `); removed from the report's other lines when they carry it too.
    prefix: Vec<u8>,
    /// A deadly-signal report (ends at `==PID==ABORTING` or its SUMMARY).
    deadly: bool,
    /// Its last line was cut (the input ended inside it): never complete.
    cut: bool,
    /// Leave the frames of context stacks unparsed (see [`ReportReader::key_parts_only`]).
    skip_context_frames: bool,
}

/// Iterator over the reports of one log. Read errors end the iteration after being yielded
/// once; the report being read at that moment is yielded first, as partial.
pub struct ReportReader<R> {
    input: R,
    /// A line that straddles the input's buffer, gathered here (capped at [`MAX_LINE`]),
    /// and its length in the input.
    pending: Vec<u8>,
    pending_length: u64,
    finished: bool,
    error: Option<io::Error>,
    state: LineState,
}

/// Everything but the input, so a line can be handled while it still sits in the input's
/// buffer (no copy for the lines that fit in it, which are nearly all).
struct LineState {
    file: PathBuf,
    clean: Vec<u8>,
    /// Offset and 1-based number of the next line.
    offset: u64,
    line_number: u64,
    open: Option<Open>,
    warnings_reported: u64,
    runtime_errors: Vec<String>,
    sanitizer: memmem::Finder<'static>,
    names: SharedNames,
    key_parts_only: bool,
}

impl<R: BufRead> ReportReader<R> {
    fn new(input: R, file: PathBuf) -> Self {
        ReportReader {
            input,
            pending: Vec::new(),
            pending_length: 0,
            finished: false,
            error: None,
            state: LineState {
                file,
                clean: Vec::new(),
                offset: 0,
                line_number: 0,
                open: None,
                warnings_reported: 0,
                runtime_errors: Vec::new(),
                sanitizer: memmem::Finder::new(b"ThreadSanitizer"),
                names: SharedNames::default(),
                key_parts_only: false,
            },
        }
    }

    /// Starts at `byte_offset` (line `line`) of the file: the caller positioned `input` there.
    pub(crate) fn starting_at(mut self, byte_offset: u64, line: u64) -> Self {
        self.state.offset = byte_offset;
        self.state.line_number = line.saturating_sub(1);
        self
    }

    /// Parses only what clustering reads: the frames of thread-creation, mutex-creation,
    /// sleep and previously-acquired stacks are skipped (their headers are kept). The
    /// triage pipeline re-reads each representative in full from its source.
    pub(crate) fn key_parts_only(mut self) -> Self {
        self.state.key_parts_only = true;
        self
    }

    /// Sum of the `ThreadSanitizer: reported N warnings` trailers read so far.
    pub fn warnings_reported(&self) -> u64 {
        self.state.warnings_reported
    }

    /// TSan's own failures outside reports (`ThreadSanitizer: CHECK failed: …`,
    /// `FATAL: ThreadSanitizer: …`), at most [`MAX_RUNTIME_ERRORS`]: the run under TSan broke.
    pub fn runtime_errors(&self) -> &[String] {
        &self.state.runtime_errors
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.state.offset
    }

    fn next_report(&mut self) -> Option<io::Result<Report>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        while !self.finished {
            match self.next_line() {
                Ok(Some(report)) => return Some(Ok(report)),
                Ok(None) => {}
                Err(error) => {
                    self.finished = true;
                    self.error = Some(error);
                }
            }
        }
        if let Some(open) = self.state.open.take() {
            return Some(Ok(finish(open, false)));
        }
        self.error.take().map(Err)
    }

    /// Reads and handles one line; returns a report it completed.
    fn next_line(&mut self) -> io::Result<Option<Report>> {
        let available = match self.input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            self.finished = true;
            if self.pending.is_empty() {
                return Ok(None);
            }
            return Ok(self.handle_pending());
        }
        match memchr(b'\n', available) {
            Some(newline) if self.pending.is_empty() => {
                let line = &available[..=newline];
                let report = self.state.handle_line(line, line.len() as u64);
                self.input.consume(newline + 1);
                Ok(report)
            }
            Some(newline) => {
                self.gather(newline + 1);
                if !self.pending.ends_with(b"\n") {
                    // Cut at MAX_LINE: still a whole line of the input.
                    self.pending.push(b'\n');
                }
                Ok(self.handle_pending())
            }
            None => {
                let length = available.len();
                self.gather(length);
                Ok(None)
            }
        }
    }

    /// Moves `length` bytes of the input's buffer to `pending`, keeping at most [`MAX_LINE`].
    fn gather(&mut self, length: usize) {
        if let Ok(available) = self.input.fill_buf() {
            let room = MAX_LINE.saturating_sub(self.pending.len());
            self.pending
                .extend_from_slice(&available[..length.min(room)]);
        }
        self.input.consume(length);
        self.pending_length += length as u64;
    }

    fn handle_pending(&mut self) -> Option<Report> {
        let report = self.state.handle_line(&self.pending, self.pending_length);
        self.pending.clear();
        self.pending_length = 0;
        report
    }
}

impl LineState {
    /// Handles one line (with its newline, unless the input ended inside it) that took
    /// `input_length` bytes of the input; returns a report it completed.
    fn handle_line(&mut self, raw: &[u8], input_length: u64) -> Option<Report> {
        let line_offset = self.offset;
        self.offset += input_length;
        self.line_number += 1;
        let cut = !raw.ends_with(b"\n");
        let mut line: &[u8] = trim_end(raw);
        if memchr(0x1b, line).is_some() {
            strip_ansi(line, &mut self.clean);
            line = &self.clean;
        }
        let line = strip_timestamp(line);
        let source = || ReportSource {
            file: self.file.clone(),
            byte_offset: line_offset,
            line: self.line_number,
        };
        let mut interrupted = None;
        if let Some(open) = &mut self.open {
            let line = strip_prefix_of(line, &open.prefix);
            match open.handle(line, &mut self.names) {
                Step::Continue => {
                    open.cut = cut;
                    return None;
                }
                Step::End => return self.open.take().map(|open| finish(open, true)),
                Step::Interrupted => interrupted = self.open.take().map(|open| finish(open, false)),
            }
        }
        // Outside a report, only lines naming ThreadSanitizer matter.
        if self.sanitizer.find(line).is_none() {
            return interrupted;
        }
        if let Some(start) = find(line, WARNING) {
            let header = trim_start(&line[start + WARNING.len()..]);
            let mut open = Open::warning(header, &line[..start], source());
            open.skip_context_frames = self.key_parts_only;
            self.open = Some(open);
            return interrupted;
        }
        if let Some(start) = find(line, FATAL_ERROR) {
            let pid = error_line_pid(&line[..start]);
            let description = trim_start(&line[start + FATAL_ERROR.len()..]);
            let mut open = Open::error(description, pid, source());
            open.skip_context_frames = self.key_parts_only;
            self.open = Some(open);
            return interrupted;
        }
        if let Some(start) = find(line, REPORTED) {
            if let Some((count, _)) = leading_u64(&line[start + REPORTED.len()..]) {
                self.warnings_reported += count;
            }
        } else if is_runtime_error(line) && self.runtime_errors.len() < MAX_RUNTIME_ERRORS {
            self.runtime_errors.push(text(trim_start(line)));
        }
        interrupted
    }
}

impl<R: BufRead> Iterator for ReportReader<R> {
    type Item = io::Result<Report>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_report()
    }
}

/// `ThreadSanitizer: CHECK failed: …`, `FATAL: ThreadSanitizer: …`, `ThreadSanitizer: nested
/// bug …`: lines where the runtime itself gave up.
fn is_runtime_error(line: &[u8]) -> bool {
    [
        &b"CHECK failed"[..],
        b"FATAL: ThreadSanitizer",
        b"nested bug",
        b"out of memory",
    ]
    .iter()
    .any(|marker| find(line, marker).is_some())
}

fn strip_prefix_of<'a>(line: &'a [u8], prefix: &[u8]) -> &'a [u8] {
    if prefix.is_empty() {
        line
    } else {
        line.strip_prefix(prefix).unwrap_or(line)
    }
}

/// `==1234==` before `ERROR:`.
fn error_line_pid(before: &[u8]) -> Option<u32> {
    let inner = trim_start(before).strip_prefix(b"==")?;
    let (pid, rest) = leading_u64(inner)?;
    rest.starts_with(b"==").then_some(u32::try_from(pid).ok()?)
}

fn finish(open: Open, closed: bool) -> Report {
    let mut report = open.report;
    report.complete = closed || (open.deadly && !open.cut && report.summary.is_some());
    report
}

/// What one line did to the open report.
enum Step {
    Continue,
    /// The report's closing line.
    End,
    /// A line that starts something else: the caller decides (new report, trailer).
    Interrupted,
}

impl Open {
    /// `<kind> (pid=N)` after `WARNING: ThreadSanitizer: `.
    fn warning(header: &[u8], prefix: &[u8], source: ReportSource) -> Open {
        let (kind_text, pid) = match memmem::rfind(header, b" (pid=") {
            Some(at) => (
                &header[..at],
                leading_u64(&header[at + 6..]).and_then(|(pid, _)| u32::try_from(pid).ok()),
            ),
            None => (header, None),
        };
        let kind = ReportKind::from_header_text(&String::from_utf8_lossy(kind_text));
        let mut report = Report::new(kind, pid, source);
        if matches!(report.kind, ReportKind::Other(_)) {
            report.raw = Some(format!("WARNING: ThreadSanitizer: {}\n", text(header)));
        }
        Open {
            report,
            section: Section::Start,
            prefix: prefix.to_vec(),
            deadly: false,
            cut: false,
            skip_context_frames: false,
        }
    }

    /// `SEGV on unknown address 0x0 (pc … T…)` after `==PID==ERROR: ThreadSanitizer: `.
    fn error(description: &[u8], pid: Option<u32>, source: ReportSource) -> Open {
        let signal_end = find(description, b" on unknown address");
        let kind = match signal_end {
            Some(end) => ReportKind::DeadlySignal(text(&description[..end])),
            None => {
                let end = find(description, b" (").unwrap_or(description.len());
                ReportKind::Other(text(&description[..end]))
            }
        };
        let address = signal_end.and_then(|end| {
            let after = trim_start(&description[end + 19..]);
            let len = after
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            parse_hex(&after[..len])
        });
        let mut report = Report::new(kind, pid, source);
        report.crash = Some(Crash {
            description: text(description),
            address,
            access: None,
            hints: Vec::new(),
        });
        if matches!(report.kind, ReportKind::Other(_)) {
            report.raw = Some(format!("ERROR: ThreadSanitizer: {}\n", text(description)));
        }
        Open {
            report,
            section: Section::Start,
            prefix: Vec::new(),
            deadly: true,
            cut: false,
            skip_context_frames: false,
        }
    }

    fn handle(&mut self, line: &[u8], names: &mut SharedNames) -> Step {
        if let Some(raw) = &mut self.report.raw {
            raw.push_str(&String::from_utf8_lossy(line));
            raw.push('\n');
        }
        let body = trim_start(line);
        let frame_line = body.first() == Some(&b'#') && body.get(1).is_some_and(u8::is_ascii_digit);
        match body.first() {
            Some(b'#') if frame_line && self.skip_context_frames && self.in_context_stack() => {
                Step::Continue
            }
            Some(b'#') if frame_line => {
                let frames = &mut self.current_stack().frames;
                if frames.capacity() == 0 {
                    // Interpreter stacks run 10-30 frames deep: skip the small regrowths.
                    frames.reserve(16);
                }
                frames.push(Frame::default());
                let frame = frames.last_mut().expect("just pushed");
                if !parse_frame_into(body, names, frame) {
                    frames.pop();
                }
                Step::Continue
            }
            Some(b'=') => self.handle_equals(body),
            Some(b'[') if body.starts_with(b"[failed to restore the stack]") => {
                self.current_stack().failed_to_restore = true;
                Step::Continue
            }
            Some(b'S') if body.starts_with(b"SUMMARY: ") => {
                let summary = body
                    .strip_prefix(b"SUMMARY: ThreadSanitizer: ")
                    .unwrap_or(body);
                self.report.summary = Some(text(summary));
                self.section = Section::Closed;
                Step::Continue
            }
            Some(_) if self.starts_other_output(body) => Step::Interrupted,
            Some(_) => {
                self.handle_section_line(body);
                Step::Continue
            }
            None => Step::Continue,
        }
    }

    /// A report line that begins something outside this report (a new report, the trailer).
    fn starts_other_output(&self, body: &[u8]) -> bool {
        [WARNING, FATAL_ERROR, REPORTED]
            .iter()
            .any(|marker| find(body, marker).is_some())
    }

    /// `==================`, `==PID==ERROR/ABORTING/The signal…/Hint…`.
    fn handle_equals(&mut self, body: &[u8]) -> Step {
        if body.starts_with(SEPARATOR) {
            return if self.deadly {
                Step::Interrupted
            } else {
                Step::End
            };
        }
        let Some(message) = body
            .strip_prefix(b"==")
            .and_then(leading_u64)
            .and_then(|(_, rest)| rest.strip_prefix(b"=="))
        else {
            return Step::Continue;
        };
        if message.starts_with(FATAL_ERROR) {
            return Step::Interrupted;
        }
        if message.starts_with(b"ABORTING") {
            return if self.deadly {
                Step::End
            } else {
                Step::Continue
            };
        }
        if let Some(crash) = &mut self.report.crash {
            if let Some(access) = message.strip_prefix(b"The signal is caused by a ") {
                let word = access.split(|b| *b == b' ').next().unwrap_or_default();
                crash.access = Some(text(word));
            } else if let Some(hint) = message.strip_prefix(b"Hint: ") {
                crash.hints.push(text(hint));
            }
        }
        Step::Continue
    }

    fn handle_section_line(&mut self, body: &[u8]) {
        if let Some((kind, previous, rest)) = access_prefix(body) {
            if let Some(access) = parse_access(kind, previous, rest) {
                self.report.accesses.push(access);
                self.section = Section::Access;
                return;
            }
        }
        if let Some(rest) = body.strip_prefix(b"Location is ") {
            let location = parse_location(rest);
            self.section = if location.stack().is_some() {
                Section::Location
            } else {
                Section::Closed
            };
            self.report.locations.push(location);
        } else if let Some(rest) = body.strip_prefix(b"Mutex M") {
            self.handle_mutex_line(rest);
        } else if let Some(rest) = body.strip_prefix(b"Thread T") {
            if let Some(thread) = parse_thread_line(rest) {
                self.section = if thread.stack.is_some() {
                    Section::Thread
                } else {
                    Section::Closed
                };
                self.report.threads.push(thread);
            }
        } else if let Some(rest) = body.strip_prefix(b"Cycle in lock order graph: ") {
            self.report.lock_cycle = parse_cycle(rest);
            self.section = Section::Closed;
        } else if body.starts_with(b"and:") {
            self.report.stacks.push(Stack::default());
            self.section = Section::Bare;
        } else if let Some(rest) = body.strip_prefix(b"Signal ") {
            self.report.signal = leading_u64(rest).and_then(|(n, _)| u32::try_from(n).ok());
            self.report.stacks.push(Stack::default());
            self.section = Section::Bare;
        } else if body.starts_with(b"As if synchronized via sleep:") {
            self.report.sleep = Some(Stack::default());
            self.section = Section::Sleep;
        } else if let Some(rest) = body.strip_prefix(b"And ") {
            if let Some((count, _)) = leading_u64(rest) {
                self.report.similar_thread_leaks = u32::try_from(count).unwrap_or(u32::MAX);
            }
        } else if body.starts_with(b"Hint:") || body.starts_with(b"ThreadSanitizer can not") {
            self.section = Section::Closed;
        }
    }

    fn handle_mutex_line(&mut self, rest: &[u8]) {
        match parse_mutex_line(rest) {
            Some(MutexLine::Created { id, address }) => {
                self.report.mutexes.push(Mutex {
                    id,
                    address,
                    destroyed: false,
                    stack: Stack::default(),
                });
                self.section = Section::Mutex;
            }
            Some(MutexLine::Destroyed { id }) => {
                self.report.mutexes.push(Mutex {
                    id,
                    address: None,
                    destroyed: true,
                    stack: Stack::default(),
                });
                self.section = Section::Closed;
            }
            Some(MutexLine::Acquired {
                acquired,
                held,
                thread,
            }) => {
                self.report.lock_edges.push(LockEdge {
                    acquired,
                    held,
                    thread,
                    stack: Stack::default(),
                    previous_stack: None,
                });
                self.section = Section::LockEdge;
            }
            Some(MutexLine::PreviouslyAcquired) => {
                if let Some(edge) = self.report.lock_edges.last_mut() {
                    edge.previous_stack = Some(Stack::default());
                    self.section = Section::LockEdgePrevious;
                }
            }
            None => {}
        }
    }

    /// In a stack the cluster key does not read (thread creation is a side of thread leaks).
    fn in_context_stack(&self) -> bool {
        match self.section {
            Section::Mutex | Section::Sleep | Section::LockEdgePrevious => true,
            Section::Thread => self.report.kind != ReportKind::ThreadLeak,
            _ => false,
        }
    }

    /// The stack the next frame belongs to.
    fn current_stack(&mut self) -> &mut Stack {
        if matches!(self.section, Section::Start | Section::Closed) {
            self.report.stacks.push(Stack::default());
            self.section = Section::Bare;
        }
        if self.section_stack().is_none() {
            // Frames where no stack is expected: keep them as a bare stack.
            if self.report.stacks.is_empty() {
                self.report.stacks.push(Stack::default());
            }
            self.section = Section::Bare;
        }
        self.section_stack().expect("the section has a stack")
    }

    fn section_stack(&mut self) -> Option<&mut Stack> {
        let report = &mut self.report;
        match self.section {
            Section::Access => report.accesses.last_mut().map(|a| &mut a.stack),
            Section::LockEdge => report.lock_edges.last_mut().map(|e| &mut e.stack),
            Section::LockEdgePrevious => report
                .lock_edges
                .last_mut()
                .and_then(|e| e.previous_stack.as_mut()),
            Section::Sleep => report.sleep.as_mut(),
            Section::Location => report.locations.last_mut().and_then(|l| l.stack_mut()),
            Section::Mutex => report.mutexes.last_mut().map(|m| &mut m.stack),
            Section::Thread => report.threads.last_mut().and_then(|t| t.stack.as_mut()),
            Section::Bare => report.stacks.last_mut(),
            Section::Start | Section::Closed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccessKind, Location};

    #[test]
    fn unknown_kinds_are_kept_verbatim_with_their_parts() {
        let log = "\
==================
WARNING: ThreadSanitizer: race on a future object (pid=77)
  Read access of FutureObject at 0x7b0400000010 by thread T3:
    #0 poll src/future.c:12:3 (libf.so+0x10)

  Location is FutureObject of size 24 at 0x7b0400000000 allocated by main thread:
    #0 future_new src/future.c:4:9 (libf.so+0x20)

SUMMARY: ThreadSanitizer: race on a future object src/future.c:12:3 in poll
==================
";
        let report = &parse_str(log)[0];
        assert_eq!(
            report.kind,
            ReportKind::Other("race on a future object".into())
        );
        assert_eq!(report.pid, Some(77));
        let raw = report.raw.as_deref().unwrap();
        assert!(raw.starts_with("WARNING: ThreadSanitizer: race on a future object (pid=77)\n"));
        assert!(raw.contains("    #0 poll src/future.c:12:3 (libf.so+0x10)\n"));
        let access = &report.accesses[0];
        assert_eq!(
            (access.kind, access.size, access.thread),
            (AccessKind::Read, None, 3)
        );
        assert!(matches!(
            &report.locations[0],
            Location::Heap { object, size: 24, .. } if object == "FutureObject"
        ));
        assert!(report.complete);
    }

    #[test]
    fn similar_thread_leaks_and_runtime_errors() {
        let log = "\
ThreadSanitizer: CHECK failed: tsan_rtl.cpp:42 \"((x)) != (0)\" (0x0, 0x0) (tid=5)
==================
WARNING: ThreadSanitizer: thread leak (pid=9)
  Thread T4 (tid=12, finished) created by thread T1 at:
    #0 pthread_create <null> (python3.13t+0xdfa91)

  And 3 more similar thread leaks.

SUMMARY: ThreadSanitizer: thread leak (python3.13t+0xdfa91) in pthread_create
==================
ThreadSanitizer: reported 1 warnings
";
        let mut reader = parse_reader(log.as_bytes(), "");
        let report = reader.next().unwrap().unwrap();
        assert!(reader.next().is_none());
        assert_eq!(report.similar_thread_leaks, 3);
        assert_eq!(report.threads[0].parent, Some(1));
        assert_eq!(reader.warnings_reported(), 1);
        assert_eq!(reader.runtime_errors().len(), 1);
        assert!(reader.runtime_errors()[0].starts_with("ThreadSanitizer: CHECK failed"));
    }

    #[test]
    fn a_constant_line_prefix_is_removed() {
        let log = "\
[gw0] ==================
[gw0] WARNING: ThreadSanitizer: data race (pid=3)
[gw0]   Write of size 4 at 0x10 by thread T1:
[gw0]     #0 f a.c:1 (a.so+0x1)
[gw0]
[gw0]   Previous read of size 4 at 0x10 by main thread:
[gw0]     #0 g a.c:2 (a.so+0x2)
[gw0]
[gw0] ==================
";
        let report = &parse_str(log)[0];
        assert_eq!(report.accesses.len(), 2);
        assert_eq!(report.accesses[1].stack.frames[0].line, Some(2));
        assert!(report.complete);
    }
}
