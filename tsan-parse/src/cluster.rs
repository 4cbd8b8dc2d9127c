//! Clustering reports into root causes.
//!
//! The key of a report is its kind, the extension frame nearest the top of each side
//! (function, file name and line; never addresses) and its location (a global's name or the
//! heap block's allocation site). Clusters keep counts, a capped set of distinct call paths,
//! origins, pids and one representative report, so memory does not grow with the number of
//! reports. Every choice is order-independent, so parallel parsing gives the same result.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classify::Classifier;
use crate::internal::{internal_reason, InternalReason};
use crate::model::{
    AccessKind, Frame, FrameOrigin, Location, Report, ReportKind, Stack, StackRole, MAIN_THREAD,
};
use crate::origin::Origin;
use crate::suppress::Suppressions;
use crate::triage::{CallPath, OriginCount, RootCause, Side, Triage, TriageStats};

/// What adding a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// It joined a root cause seen before.
    Known,
    /// It is the first report of its root cause that is the extension's (the cluster may
    /// have held interpreter-internal reports before).
    NewRootCause,
    /// It is the first report of a cluster, and not the extension's (see
    /// [`crate::InternalReason`]).
    NewNoise,
}

/// Limits that keep a cluster's memory bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterOptions {
    /// Distinct call paths kept per root cause.
    pub max_call_paths: usize,
    /// Frames per side in a call path.
    pub call_path_depth: usize,
    /// Pids kept per root cause.
    pub max_pids: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            max_call_paths: 8,
            call_path_depth: 6,
            max_pids: 32,
        }
    }
}

/// Distinct call paths are counted exactly up to this many per root cause.
const MAX_COUNTED_PATHS: usize = 4096;

/// Folds reports into root causes. Create one per thread and [`Clusterer::merge`] them.
#[derive(Debug, Clone)]
pub struct Clusterer {
    classifier: Classifier,
    options: ClusterOptions,
    suppressions: Suppressions,
    clusters: HashMap<String, Cluster>,
    stats: TriageStats,
}

#[derive(Debug, Clone)]
struct Cluster {
    kind: ReportKind,
    count: u64,
    /// One of its reports is the extension's (later ones are not judged); without one, the
    /// cluster is interpreter-internal.
    has_extension_report: bool,
    location_key: Option<String>,
    side_access_kinds: Vec<BTreeSet<AccessKind>>,
    call_paths: BTreeSet<CallPath>,
    path_hashes: HashSet<u64>,
    origins: BTreeMap<Origin, u64>,
    unattributed: u64,
    pids: BTreeSet<u32>,
    representative: Report,
    /// Why the representative is not the extension's (kept while no report is).
    representative_reason: Option<InternalReason>,
}

/// The parts of a report that decide its cluster.
struct Key<'a> {
    id: String,
    sides: Vec<SideStack<'a>>,
    location_key: Option<String>,
    /// Hash of the call path (see [`call_path_frames`]), to skip formatting known paths.
    path_hash: u64,
}

/// One side of a report: a stack, what it is, its key and, for accesses, the access kind.
struct SideStack<'a> {
    role: StackRole,
    stack: &'a Stack,
    access: Option<AccessKind>,
    key: String,
}

impl Clusterer {
    pub fn new(classifier: Classifier, options: ClusterOptions) -> Clusterer {
        Clusterer {
            classifier,
            options,
            suppressions: Suppressions::default(),
            clusters: HashMap::new(),
            stats: TriageStats::default(),
        }
    }

    /// Applies the `race_top:` entries of the run's suppressions at triage time (see
    /// [`crate::Stack::effective_top`]): reports they match are kept apart.
    pub fn with_suppressions(mut self, suppressions: Suppressions) -> Clusterer {
        self.suppressions = suppressions;
        self
    }

    /// Counters the file layer fills (files, bytes, trailers, unreadable files).
    pub fn stats_mut(&mut self) -> &mut TriageStats {
        &mut self.stats
    }

    /// Adds `report` and says whether it opened a new cluster. Only the stacks its key depends
    /// on are classified here; the representatives get the rest in [`Clusterer::finish`].
    pub fn add(&mut self, mut report: Report) -> Added {
        classify_key_stacks(&self.classifier, &mut report);
        self.stats.reports += 1;
        self.stats.partial_reports += u64::from(!report.complete);
        self.stats.crashes += u64::from(matches!(report.kind, ReportKind::DeadlySignal(_)));
        let key = cluster_key(&report, self.options.call_path_depth);
        let options = self.options;
        let known = self.clusters.get(&key.id);
        // Once a cluster holds one report of the extension's, the others' reasons are moot.
        let reason = if known.is_some_and(|c| c.has_extension_report) {
            None
        } else {
            report_reason(&report, &key, &self.suppressions)
        };
        let added = match (known, &reason) {
            (None, Some(_)) => Added::NewNoise,
            (None, None) => Added::NewRootCause,
            (Some(cluster), None) if !cluster.has_extension_report => Added::NewRootCause,
            (Some(_), _) => Added::Known,
        };
        let cluster = (self.clusters.entry(key.id.clone()))
            .or_insert_with(|| Cluster::empty(&report, &key, reason.clone()));
        cluster.record(&report, &key, options);
        cluster.has_extension_report |= reason.is_none();
        if representative_order(&report) < representative_order(&cluster.representative) {
            cluster.representative = report;
            cluster.representative_reason = reason;
        }
        added
    }

    /// The representative report of every cluster (to replace with a fuller parse).
    pub(crate) fn representatives_mut(&mut self) -> impl Iterator<Item = &mut Report> {
        self.clusters.values_mut().map(|c| &mut c.representative)
    }

    /// Adds everything `other` collected.
    pub fn merge(&mut self, other: Clusterer) {
        let options = self.options;
        for (id, theirs) in other.clusters {
            match self.clusters.get_mut(&id) {
                Some(ours) => ours.merge(theirs, options),
                None => {
                    self.clusters.insert(id, theirs);
                }
            }
        }
        merge_stats(&mut self.stats, other.stats);
    }

    /// The root causes, most frequent first (ties by id), noise apart.
    pub fn finish(self) -> Triage {
        let classifier = &self.classifier;
        let (mut noise, mut root_causes): (Vec<_>, Vec<_>) = self
            .clusters
            .into_iter()
            .map(|(id, mut cluster)| {
                classifier.classify_report(&mut cluster.representative);
                let root_cause = cluster.into_root_cause(id);
                (root_cause.internal.is_some(), root_cause)
            })
            .partition(|(noise, _)| *noise);
        let order = |a: &(bool, RootCause), b: &(bool, RootCause)| {
            b.1.count.cmp(&a.1.count).then_with(|| a.1.id.cmp(&b.1.id))
        };
        root_causes.sort_by(order);
        noise.sort_by(order);
        let mut stats = self.stats;
        stats.unreadable.sort_by(|a, b| a.file.cmp(&b.file));
        // Stable: the lines of one file keep their order.
        stats.runtime_errors.sort_by(|a, b| a.file.cmp(&b.file));
        Triage {
            root_causes: root_causes.into_iter().map(|(_, r)| r).collect(),
            interpreter_noise: noise.into_iter().map(|(_, r)| r).collect(),
            stats,
        }
    }
}

fn merge_stats(ours: &mut TriageStats, theirs: TriageStats) {
    ours.files += theirs.files;
    ours.bytes += theirs.bytes;
    ours.reports += theirs.reports;
    ours.partial_reports += theirs.partial_reports;
    ours.crashes += theirs.crashes;
    ours.warnings_reported += theirs.warnings_reported;
    ours.unreadable.extend(theirs.unreadable);
    ours.runtime_errors.extend(theirs.runtime_errors);
}

/// Classifies the side stacks and location stacks: everything the key reads.
fn classify_key_stacks(classifier: &Classifier, report: &mut Report) {
    let sides: Vec<&mut Stack> = match sides_of(report) {
        Sides::Accesses => report.accesses.iter_mut().map(|a| &mut a.stack).collect(),
        Sides::LockEdges => report.lock_edges.iter_mut().map(|e| &mut e.stack).collect(),
        Sides::ThreadCreation => report
            .threads
            .iter_mut()
            .filter_map(|t| t.stack.as_mut())
            .collect(),
        Sides::Bare => report.stacks.iter_mut().collect(),
    };
    let locations = report.locations.iter_mut().filter_map(Location::stack_mut);
    for stack in sides.into_iter().chain(locations) {
        for frame in &mut stack.frames {
            frame.origin = classifier.classify(frame);
        }
    }
}

/// Complete reports first, then by where they were read.
fn representative_order(report: &Report) -> (bool, &std::path::Path, u64) {
    (
        !report.complete,
        report.source.file.as_path(),
        report.source.byte_offset,
    )
}

impl Cluster {
    fn empty(report: &Report, key: &Key, reason: Option<InternalReason>) -> Cluster {
        Cluster {
            kind: report.kind.clone(),
            count: 0,
            has_extension_report: false,
            location_key: key.location_key.clone(),
            side_access_kinds: vec![BTreeSet::new(); key.sides.len()],
            call_paths: BTreeSet::new(),
            path_hashes: HashSet::new(),
            origins: BTreeMap::new(),
            unattributed: 0,
            pids: BTreeSet::new(),
            representative: report.clone(),
            representative_reason: reason,
        }
    }

    fn record(&mut self, report: &Report, key: &Key, options: ClusterOptions) {
        self.count += 1;
        for (kinds, side) in self.side_access_kinds.iter_mut().zip(&key.sides) {
            kinds.extend(side.access);
        }
        let counting = self.path_hashes.len() < MAX_COUNTED_PATHS;
        let new_path = counting && self.path_hashes.insert(key.path_hash);
        if new_path || !counting {
            self.call_paths
                .insert(call_path(key, options.call_path_depth));
            truncate_set(&mut self.call_paths, options.max_call_paths);
        }
        match &report.origin {
            Some(origin) => *self.origins.entry(origin.clone()).or_default() += 1,
            None => self.unattributed += 1,
        }
        if let Some(pid) = report.pid {
            self.pids.insert(pid);
            truncate_set(&mut self.pids, options.max_pids);
        }
    }

    fn merge(&mut self, other: Cluster, options: ClusterOptions) {
        self.count += other.count;
        self.has_extension_report |= other.has_extension_report;
        for (ours, theirs) in self
            .side_access_kinds
            .iter_mut()
            .zip(other.side_access_kinds)
        {
            ours.extend(theirs);
        }
        self.call_paths.extend(other.call_paths);
        truncate_set(&mut self.call_paths, options.max_call_paths);
        for hash in other.path_hashes {
            if self.path_hashes.len() >= MAX_COUNTED_PATHS {
                break;
            }
            self.path_hashes.insert(hash);
        }
        for (origin, count) in other.origins {
            *self.origins.entry(origin).or_default() += count;
        }
        self.unattributed += other.unattributed;
        self.pids.extend(other.pids);
        truncate_set(&mut self.pids, options.max_pids);
        if representative_order(&other.representative) < representative_order(&self.representative)
        {
            self.representative = other.representative;
            self.representative_reason = other.representative_reason;
        }
    }

    fn into_root_cause(self, id: String) -> RootCause {
        let internal = (!self.has_extension_report)
            .then_some(self.representative_reason)
            .flatten();
        let representative = self.representative;
        let sides = side_stacks(&representative)
            .into_iter()
            .zip(self.side_access_kinds)
            .map(|(SideStack { role, stack, .. }, kinds)| Side {
                role,
                access_kinds: kinds.into_iter().collect(),
                frame: nearest_extension_frame(stack).cloned(),
                top_frame: called_frame(stack)
                    .filter(|top| Some(*top) != nearest_extension_frame(stack))
                    .cloned(),
            })
            .collect();
        RootCause {
            id,
            kind: self.kind,
            count: self.count,
            sides,
            variable: variable_of(&representative),
            location_key: self.location_key,
            call_paths: self.call_paths.into_iter().collect(),
            distinct_call_paths: self.path_hashes.len() as u64,
            origins: self
                .origins
                .into_iter()
                .map(|(origin, count)| OriginCount { origin, count })
                .collect(),
            unattributed: self.unattributed,
            pids: self.pids.into_iter().collect(),
            representative,
            internal,
        }
    }
}

fn truncate_set<T: Ord>(set: &mut BTreeSet<T>, max: usize) {
    while set.len() > max {
        set.pop_last();
    }
}

/// Which stacks are the "sides" of a report.
enum Sides {
    Accesses,
    LockEdges,
    ThreadCreation,
    Bare,
}

fn sides_of(report: &Report) -> Sides {
    if !report.accesses.is_empty() {
        Sides::Accesses
    } else if !report.lock_edges.is_empty() {
        Sides::LockEdges
    } else if report.kind == ReportKind::ThreadLeak {
        Sides::ThreadCreation
    } else {
        Sides::Bare
    }
}

/// The side stacks of a report, sorted by their key so that which side TSan printed first
/// does not matter.
fn side_stacks(report: &Report) -> Vec<SideStack<'_>> {
    let side = |role, stack, access| SideStack {
        role,
        stack,
        access,
        key: side_key(stack),
    };
    let mut sides: Vec<SideStack> = match sides_of(report) {
        Sides::Accesses => report
            .accesses
            .iter()
            .map(|a| side(StackRole::Access, &a.stack, Some(a.kind)))
            .collect(),
        Sides::LockEdges => report
            .lock_edges
            .iter()
            .map(|e| side(StackRole::LockAcquired, &e.stack, None))
            .collect(),
        Sides::ThreadCreation => report
            .threads
            .iter()
            .filter_map(|t| t.stack.as_ref())
            .map(|s| side(StackRole::ThreadCreation, s, None))
            .collect(),
        Sides::Bare => report
            .stacks
            .iter()
            .map(|s| side(StackRole::Bare, s, None))
            .collect(),
    };
    sides.sort_by(|a, b| a.key.cmp(&b.key));
    sides
}

fn cluster_key(report: &Report, depth: usize) -> Key<'_> {
    let sides = side_stacks(report);
    let location_key = location_key(report);
    let mut hasher = Sha256::new();
    hasher.update(report.kind.header_text().as_bytes());
    for side in &sides {
        hasher.update(b"\n");
        hasher.update(side.key.as_bytes());
    }
    hasher.update(b"\n@");
    hasher.update(location_key.as_deref().unwrap_or_default().as_bytes());
    let digest = hasher.finalize();
    let mut path_hasher = DefaultHasher::new();
    for side in &sides {
        for frame in call_path_frames(side.stack, depth) {
            // What `Frame::describe` shows, so that equal hashes mean equal call paths.
            let module = frame
                .file
                .is_none()
                .then_some((&frame.module, frame.offset));
            (
                &frame.function,
                &frame.file,
                frame.line,
                frame.column,
                module,
            )
                .hash(&mut path_hasher);
        }
        path_hasher.write_u8(0xff);
    }
    Key {
        id: format!("tsan-{}", hex::encode(&digest[..8])),
        sides,
        location_key,
        path_hash: path_hasher.finish(),
    }
}

/// The extension frame nearest the top, or (for reports without one) the innermost frame
/// outside the runtime, as `function@file:line`.
fn side_key(stack: &Stack) -> String {
    match nearest_extension_frame(stack).or_else(|| top_frame(stack)) {
        Some(frame) => frame_key(frame),
        None if stack.failed_to_restore => "[failed to restore the stack]".to_string(),
        None => String::new(),
    }
}

/// `function@file-name:line`: stable across machines, builds and load addresses (and
/// symbolizers: an approximate line is not part of it); only an unsymbolized frame falls back
/// to its module offset.
fn frame_key(frame: &Frame) -> String {
    let function = frame.function.as_deref().unwrap_or("??");
    match (&frame.file, frame.printed_line()) {
        (Some(file), line) => format!("{function}@{}:{}", base_name(file), line.unwrap_or(0)),
        (None, _) if frame.function.is_some() => function.to_string(),
        (None, _) => format!(
            "{}+{:#x}",
            base_name(frame.module.as_deref().unwrap_or("??")),
            frame.offset.or(frame.pc).unwrap_or(0)
        ),
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(crate) fn nearest_extension_frame(stack: &Stack) -> Option<&Frame> {
    stack
        .frames
        .iter()
        .find(|f| f.origin == FrameOrigin::Extension)
}

/// The innermost frame outside the TSan runtime.
fn top_frame(stack: &Stack) -> Option<&Frame> {
    stack
        .frames
        .iter()
        .find(|f| f.origin != FrameOrigin::TsanRuntime)
}

/// The innermost frame that is not the runtime's own machinery: what the code called
/// (`free`, `pthread_mutex_lock`, `PyDict_SetItem`) or the racing code itself.
fn called_frame(stack: &Stack) -> Option<&Frame> {
    stack.frames.iter().find(|f| {
        f.origin != FrameOrigin::TsanRuntime
            || f.function
                .as_deref()
                .is_some_and(|name| !name.starts_with("__"))
    })
}

/// Up to `depth` frames: the extension's frames when the stack has any, else the frames
/// outside the runtime.
fn call_path_frames(stack: &Stack, depth: usize) -> impl Iterator<Item = &Frame> {
    let has_extension = nearest_extension_frame(stack).is_some();
    stack
        .frames
        .iter()
        .filter(move |f| {
            if has_extension {
                f.origin == FrameOrigin::Extension
            } else {
                f.origin != FrameOrigin::TsanRuntime
            }
        })
        .take(depth)
}

fn call_path(key: &Key, depth: usize) -> CallPath {
    CallPath {
        sides: key
            .sides
            .iter()
            .map(|side| {
                call_path_frames(side.stack, depth)
                    .map(Frame::describe)
                    .collect()
            })
            .collect(),
    }
}

/// The location part of the key: the first named global, heap allocation site, stack, TLS
/// or file descriptor.
fn location_key(report: &Report) -> Option<String> {
    report.locations.iter().find_map(|location| match location {
        Location::Global { .. } => location.global_name().map(|name| format!("global:{name}")),
        Location::Heap { stack, .. } => Some(match nearest_extension_frame(stack) {
            Some(frame) => format!("heap:{}", frame_key(frame)),
            None => "heap".to_string(),
        }),
        Location::Stack { .. } => Some("stack".to_string()),
        Location::Tls { .. } => Some("tls".to_string()),
        Location::Fd { .. } => Some("fd".to_string()),
        Location::Other { text } => Some(format!("other:{text}")),
    })
}

/// What was raced on, for people: a global's name, or the heap block with its allocation
/// site and the offset of the access in it.
fn variable_of(report: &Report) -> Option<String> {
    let access_address = report.accesses.first().map(|a| a.address);
    report.locations.iter().find_map(|location| match location {
        Location::Global { .. } => location.global_name().map(str::to_string),
        Location::Heap {
            object,
            size,
            address,
            stack,
            ..
        } => {
            let site = nearest_extension_frame(stack)
                .or_else(|| top_frame(stack))
                .map(|f| format!(" allocated in {}", f.describe()))
                .unwrap_or_default();
            let offset = access_address
                .and_then(|a| a.checked_sub(*address))
                .map(|o| format!(", offset {o}"))
                .unwrap_or_default();
            Some(format!("{object} of size {size}{site}{offset}"))
        }
        Location::Stack { thread } => Some(format!("stack of {}", thread_name(*thread))),
        Location::Tls { thread } => {
            Some(format!("thread-local storage of {}", thread_name(*thread)))
        }
        Location::Fd { fd, .. } => Some(format!("file descriptor {fd}")),
        Location::Other { .. } => None,
    })
}

fn thread_name(thread: u32) -> String {
    if thread == MAIN_THREAD {
        "the main thread".to_string()
    } else {
        format!("thread T{thread}")
    }
}

/// Why `report` is not the extension's, judged on the side stacks of its key.
fn report_reason(
    report: &Report,
    key: &Key,
    suppressions: &Suppressions,
) -> Option<InternalReason> {
    let stacks: Vec<&Stack> = key.sides.iter().map(|side| side.stack).collect();
    let are_accesses = matches!(sides_of(report), Sides::Accesses);
    internal_reason(&report.kind, &stacks, are_accesses, suppressions)
}
