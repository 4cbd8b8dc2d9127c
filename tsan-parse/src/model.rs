//! The parsed form of one ThreadSanitizer report, part by part, as TSan prints it.
//!
//! Thread ids are TSan's own (`T3` is 3, the main thread is 0); addresses are runtime
//! addresses; module offsets are offsets into the module file as TSan printed them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The thread id TSan gives the main thread (`main thread` in reports).
pub const MAIN_THREAD: u32 = 0;

/// Where a report was read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReportSource {
    /// The log file (`tsan.<pid>`, a CI log, …); empty for in-memory input.
    pub file: PathBuf,
    /// Byte offset of the report's first line (`WARNING: ThreadSanitizer: …` or
    /// `==PID==ERROR: ThreadSanitizer: …`) within `file`, counting any timestamp prefix.
    pub byte_offset: u64,
    /// 1-based line number of that line.
    pub line: u64,
}

/// What TSan reported. Unit variants are the kinds TSan prints in its `WARNING:` header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    DataRace,
    /// `data race on vptr (ctor/dtor vs virtual call)`.
    DataRaceOnVptr,
    HeapUseAfterFree,
    /// `heap-use-after-free (virtual call vs free)`.
    HeapUseAfterFreeVptr,
    /// `lock-order-inversion (potential deadlock)`.
    LockOrderInversion,
    ThreadLeak,
    /// `signal-unsafe call inside of a signal`.
    SignalUnsafeCall,
    SignalHandlerSpoilsErrno,
    /// `destroy of a locked mutex`.
    DestroyOfLockedMutex,
    /// `double lock of a mutex`.
    DoubleLock,
    /// `unlock of an unlocked mutex (or by a wrong thread)`.
    UnlockOfUnlockedMutex,
    /// `read lock of a write locked mutex`.
    ReadLockOfWriteLockedMutex,
    /// `read unlock of a write locked mutex`.
    ReadUnlockOfWriteLockedMutex,
    /// `use of an invalid mutex (e.g. uninitialized or destroyed)`.
    InvalidMutex,
    MutexHeldInWrongContext,
    /// A fatal signal (`ThreadSanitizer:DEADLYSIGNAL`, `ERROR: ThreadSanitizer: SEGV on …`);
    /// the value is the signal name TSan printed (`SEGV`, `BUS`, `FPE`, `ILL`, `ABRT`).
    DeadlySignal(String),
    /// Any other header, kept verbatim (text between `ThreadSanitizer: ` and ` (pid=`).
    Other(String),
}

/// Header text of each known kind, exactly as TSan prints it.
const KIND_TEXT: &[(&str, ReportKind)] = &[
    ("data race", ReportKind::DataRace),
    (
        "data race on vptr (ctor/dtor vs virtual call)",
        ReportKind::DataRaceOnVptr,
    ),
    ("heap-use-after-free", ReportKind::HeapUseAfterFree),
    (
        "heap-use-after-free (virtual call vs free)",
        ReportKind::HeapUseAfterFreeVptr,
    ),
    (
        "lock-order-inversion (potential deadlock)",
        ReportKind::LockOrderInversion,
    ),
    ("thread leak", ReportKind::ThreadLeak),
    (
        "signal-unsafe call inside of a signal",
        ReportKind::SignalUnsafeCall,
    ),
    (
        "signal handler spoils errno",
        ReportKind::SignalHandlerSpoilsErrno,
    ),
    (
        "destroy of a locked mutex",
        ReportKind::DestroyOfLockedMutex,
    ),
    ("double lock of a mutex", ReportKind::DoubleLock),
    (
        "unlock of an unlocked mutex (or by a wrong thread)",
        ReportKind::UnlockOfUnlockedMutex,
    ),
    (
        "read lock of a write locked mutex",
        ReportKind::ReadLockOfWriteLockedMutex,
    ),
    (
        "read unlock of a write locked mutex",
        ReportKind::ReadUnlockOfWriteLockedMutex,
    ),
    (
        "use of an invalid mutex (e.g. uninitialized or destroyed)",
        ReportKind::InvalidMutex,
    ),
    (
        "mutex held in the wrong context",
        ReportKind::MutexHeldInWrongContext,
    ),
];

impl ReportKind {
    /// The kind named by a `WARNING: ThreadSanitizer: <text> (pid=N)` header.
    pub fn from_header_text(text: &str) -> ReportKind {
        KIND_TEXT
            .iter()
            .find(|(known, _)| *known == text)
            .map(|(_, kind)| kind.clone())
            .unwrap_or_else(|| ReportKind::Other(text.to_string()))
    }

    /// The text TSan prints for this kind.
    pub fn header_text(&self) -> &str {
        match self {
            ReportKind::DeadlySignal(signal) => signal,
            ReportKind::Other(text) => text,
            known => KIND_TEXT
                .iter()
                .find(|(_, kind)| kind == known)
                .map(|(text, _)| *text)
                .unwrap_or_default(),
        }
    }

    /// Races whose two sides are memory accesses (the kinds `race_top:` suppresses).
    pub fn is_race(&self) -> bool {
        matches!(
            self,
            ReportKind::DataRace
                | ReportKind::DataRaceOnVptr
                | ReportKind::HeapUseAfterFree
                | ReportKind::HeapUseAfterFreeVptr
        )
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportKind::DeadlySignal(signal) => write!(f, "{signal} (deadly signal)"),
            other => f.write_str(other.header_text()),
        }
    }
}

/// One parsed report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    /// From `(pid=N)` or `==N==`; `None` when the header was cut.
    pub pid: Option<u32>,
    pub source: ReportSource,
    /// Which test or scenario produced the report; set by the caller, never by the parser.
    pub origin: Option<crate::Origin>,
    /// False when the input ended (or the next report began) before the report's closing
    /// line: the report is partial, and everything read up to the cut is kept.
    pub complete: bool,
    /// Stacks printed without a section header: the call of a signal-unsafe function, the
    /// mutex misuse site (`and:` separates further ones), the faulting stack of a deadly
    /// signal, the handler of `signal handler spoils errno`.
    pub stacks: Vec<Stack>,
    /// Memory accesses, the current one first (`Previous …` ones after it).
    pub accesses: Vec<Access>,
    pub locations: Vec<Location>,
    /// `Mutex M0 (0x…) created at:` sections.
    pub mutexes: Vec<Mutex>,
    /// `Thread T1 … created by … at:` sections.
    pub threads: Vec<Thread>,
    /// Lock-order inversions: the cycle, in order, as `Cycle in lock order graph:` lists it.
    pub lock_cycle: Vec<CycleMutex>,
    /// Lock-order inversions: one edge per `Mutex M1 acquired here while holding mutex M0`.
    pub lock_edges: Vec<LockEdge>,
    /// `As if synchronized via sleep:` stack.
    pub sleep: Option<Stack>,
    /// `Signal N handler invoked at:` (signal handler spoils errno).
    pub signal: Option<u32>,
    /// Deadly signals: the `ERROR:` line and the details TSan adds.
    pub crash: Option<Crash>,
    /// `And N more similar thread leaks.`
    pub similar_thread_leaks: u32,
    /// Text after `SUMMARY: ThreadSanitizer: `.
    pub summary: Option<String>,
    /// The report's text, verbatim, for kinds this parser does not know ([`ReportKind::Other`]).
    pub raw: Option<String>,
}

impl Report {
    /// An empty report of `kind` read at `source`; the parser fills it section by section.
    pub fn new(kind: ReportKind, pid: Option<u32>, source: ReportSource) -> Report {
        Report {
            kind,
            pid,
            source,
            origin: None,
            complete: false,
            stacks: Vec::new(),
            accesses: Vec::new(),
            locations: Vec::new(),
            mutexes: Vec::new(),
            threads: Vec::new(),
            lock_cycle: Vec::new(),
            lock_edges: Vec::new(),
            sleep: None,
            signal: None,
            crash: None,
            similar_thread_leaks: 0,
            summary: None,
            raw: None,
        }
    }

    /// Every stack of the report, in print order, each with what it is.
    pub fn all_stacks(&self) -> impl Iterator<Item = (StackRole, &Stack)> {
        let bare = self.stacks.iter().map(|s| (StackRole::Bare, s));
        let edges = self.lock_edges.iter().flat_map(|edge| {
            std::iter::once((StackRole::LockAcquired, &edge.stack)).chain(
                edge.previous_stack
                    .iter()
                    .map(|s| (StackRole::LockPreviouslyAcquired, s)),
            )
        });
        let accesses = self.accesses.iter().map(|a| (StackRole::Access, &a.stack));
        let sleep = self.sleep.iter().map(|s| (StackRole::Sleep, s));
        let locations = self
            .locations
            .iter()
            .filter_map(Location::stack)
            .map(|s| (StackRole::Allocation, s));
        let mutexes = self
            .mutexes
            .iter()
            .map(|m| (StackRole::MutexCreation, &m.stack));
        let threads = self
            .threads
            .iter()
            .filter_map(|t| t.stack.as_ref())
            .map(|s| (StackRole::ThreadCreation, s));
        bare.chain(edges)
            .chain(accesses)
            .chain(sleep)
            .chain(locations)
            .chain(mutexes)
            .chain(threads)
    }

    /// Every stack, mutable (for symbolization and classification).
    pub fn all_stacks_mut(&mut self) -> impl Iterator<Item = &mut Stack> {
        let edges = self.lock_edges.iter_mut().flat_map(|edge| {
            std::iter::once(&mut edge.stack).chain(edge.previous_stack.iter_mut())
        });
        let locations = self.locations.iter_mut().filter_map(Location::stack_mut);
        self.stacks
            .iter_mut()
            .chain(edges)
            .chain(self.accesses.iter_mut().map(|a| &mut a.stack))
            .chain(self.sleep.iter_mut())
            .chain(locations)
            .chain(self.mutexes.iter_mut().map(|m| &mut m.stack))
            .chain(self.threads.iter_mut().filter_map(|t| t.stack.as_mut()))
    }
}

/// What a stack of a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackRole {
    Bare,
    Access,
    LockAcquired,
    LockPreviouslyAcquired,
    Sleep,
    Allocation,
    MutexCreation,
    ThreadCreation,
}

/// A call stack, innermost frame first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub frames: Vec<Frame>,
    /// TSan printed `[failed to restore the stack]` instead of frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed_to_restore: bool,
}

/// One `#N function file:line[:col] (module[:arch]+0xOFF) (BuildId: …)` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The `#N` number as printed.
    pub index: u32,
    /// `None` for `<null>`. C++ and Rust names are kept as printed (they may hold spaces).
    /// Names are shared between the frames of a log that repeat them (as are `file`,
    /// `module` and `build_id`).
    pub function: Option<Arc<str>>,
    /// `None` for `<null>`.
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    /// `line` is not the instruction's own: the compiler put the instruction on line 0, TSan
    /// printed the file alone, and the [`crate::Symbolizer`] took the line of the line
    /// table's nearest earlier row of the same file and function.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub line_approximate: bool,
    /// clang's runtime prints a column; gcc's does not.
    pub column: Option<u32>,
    /// Module as printed: a base name by default, a full path with `%m` in the format.
    pub module: Option<Arc<str>>,
    /// `:x86_64`-style suffix of the module, when printed.
    pub arch: Option<String>,
    /// Offset into the module (`+0x…`).
    pub offset: Option<u64>,
    /// `(0x…)` when TSan knew no module for the pc.
    pub pc: Option<u64>,
    pub build_id: Option<Arc<str>>,
    /// Who the code belongs to; [`FrameOrigin::Unclassified`] until a [`crate::Classifier`] ran.
    #[serde(default)]
    pub origin: FrameOrigin,
    /// Function/file/line came from this crate's symbolizer, not from TSan.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub symbolized: bool,
}

impl Frame {
    /// `function file:line[:col]` for people, `<null>` parts shown as `??`.
    pub fn describe(&self) -> String {
        let function = self.function.as_deref().unwrap_or("??");
        match self.source_location() {
            Some(location) => format!("{function} {location}"),
            None => match (&self.module, self.offset) {
                (Some(module), Some(offset)) => format!("{function} ({module}+{offset:#x})"),
                _ => function.to_string(),
            },
        }
    }

    /// `file:line[:col]`, when the file is known; an approximate line says so.
    pub fn source_location(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        Some(match (self.line, self.column) {
            (Some(line), _) if self.line_approximate => format!("{file}:{line} (approximate line)"),
            (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
            (Some(line), None) => format!("{file}:{line}"),
            _ => file.to_string(),
        })
    }

    /// The line as TSan printed it: an approximate line is none.
    pub fn printed_line(&self) -> Option<u32> {
        self.line.filter(|_| !self.line_approximate)
    }
}

/// Who a frame's code belongs to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FrameOrigin {
    /// The extension under review.
    Extension,
    /// The interpreter: `python3.x`, `libpython3.x`, `lib-dynload` modules, CPython headers.
    Cpython,
    /// libc, libpthread, the dynamic loader.
    Libc,
    /// The TSan runtime and its interceptors.
    TsanRuntime,
    /// Any other library.
    Other,
    #[default]
    Unclassified,
}

/// The kind of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    Read,
    Write,
    AtomicRead,
    AtomicWrite,
}

impl AccessKind {
    pub fn is_write(self) -> bool {
        matches!(self, AccessKind::Write | AccessKind::AtomicWrite)
    }

    pub fn is_atomic(self) -> bool {
        matches!(self, AccessKind::AtomicRead | AccessKind::AtomicWrite)
    }
}

impl fmt::Display for AccessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessKind::Read => "read",
            AccessKind::Write => "write",
            AccessKind::AtomicRead => "atomic read",
            AccessKind::AtomicWrite => "atomic write",
        })
    }
}

/// `  [Previous ]Write of size 8 at 0x… by thread T1 (mutexes: write M0):` and its stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub kind: AccessKind,
    /// A `Previous …` access (the earlier side of a race; for use-after-free, the free).
    pub previous: bool,
    /// `None` for external-object accesses, which print no size.
    pub size: Option<u32>,
    pub address: u64,
    /// TSan thread id ([`MAIN_THREAD`] for `main thread`).
    pub thread: u32,
    pub mutexes: Vec<HeldMutex>,
    pub stack: Stack,
}

/// A mutex held during an access: ` (mutexes: write M0, read M1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldMutex {
    pub id: u64,
    pub write: bool,
}

/// A `Location is …` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Location {
    /// `Location is global 'name' [of size N] at 0x… (module+0xOFF)`.
    Global {
        name: String,
        size: Option<u64>,
        address: u64,
        module: Option<String>,
        offset: Option<u64>,
    },
    /// `Location is heap block of size N at 0x… allocated by thread T1:` (+ stack); `object`
    /// is `heap block` or the external object type TSan named.
    Heap {
        object: String,
        size: u64,
        address: u64,
        thread: u32,
        stack: Stack,
    },
    /// `Location is stack of thread T1.`
    Stack { thread: u32 },
    /// `Location is TLS of thread T1.`
    Tls { thread: u32 },
    /// `Location is file descriptor N created|destroyed by thread T1 at:` (+ stack).
    Fd {
        fd: i64,
        destroyed: bool,
        thread: u32,
        stack: Stack,
    },
    /// Any other `Location is …` line, verbatim (without the `Location is ` prefix).
    Other { text: String },
}

impl Location {
    /// A global's name, unless TSan could not name it (`<null>`, `??`).
    pub fn global_name(&self) -> Option<&str> {
        match self {
            Location::Global { name, .. } if name != "<null>" && name != "??" => Some(name),
            _ => None,
        }
    }

    pub fn stack(&self) -> Option<&Stack> {
        match self {
            Location::Heap { stack, .. } | Location::Fd { stack, .. } => Some(stack),
            _ => None,
        }
    }

    pub fn stack_mut(&mut self) -> Option<&mut Stack> {
        match self {
            Location::Heap { stack, .. } | Location::Fd { stack, .. } => Some(stack),
            _ => None,
        }
    }
}

/// `  Mutex M0 (0x…) created at:` (+ stack), or `Mutex M0 is already destroyed.`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mutex {
    pub id: u64,
    pub address: Option<u64>,
    pub destroyed: bool,
    pub stack: Stack,
}

/// `  Thread T1 'name' (tid=N, running|finished) created by main thread at:` (+ stack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub id: u32,
    pub name: Option<String>,
    /// The OS thread id (`tid=`).
    pub os_tid: Option<u64>,
    pub running: bool,
    /// The creating thread; `None` for GCD workers and unparsable lines.
    pub parent: Option<u32>,
    pub stack: Option<Stack>,
}

/// A mutex of a lock-order cycle: `M0 (0x…)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleMutex {
    pub id: u64,
    pub address: Option<u64>,
}

/// `  Mutex M1 acquired here while holding mutex M0 in thread T1:` and, with
/// `second_deadlock_stack=1`, `  Mutex M0 previously acquired by the same thread here:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockEdge {
    pub acquired: u64,
    pub held: u64,
    pub thread: u32,
    pub stack: Stack,
    pub previous_stack: Option<Stack>,
}

/// A deadly signal: `==PID==ERROR: ThreadSanitizer: SEGV on unknown address 0x… (pc … T…)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    /// The `ERROR:` line after `ThreadSanitizer: `.
    pub description: String,
    /// The faulting address, when printed.
    pub address: Option<u64>,
    /// `READ` or `WRITE` from `The signal is caused by a WRITE memory access.`
    pub access: Option<String>,
    /// `Hint: …` lines.
    pub hints: Vec<String>,
}
