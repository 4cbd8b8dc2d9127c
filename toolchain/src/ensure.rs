//! `ensure_interpreter`: the cache hit fast path, then fetch → unpack → build → verify →
//! publish.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::build::{self, BuildPlan};
use crate::cache::{self, Layout, Manifest, WorkDir};
use crate::fetch;
use crate::host::{self, CompilerChoice, CompilerInfo};
use crate::interpreter::{Interpreter, SourceKind, SourceRecord};
use crate::progress::{format_secs, Progress};
use crate::source::{self, Obtained};
use crate::verify;
use crate::versions;
use crate::{BuildRequest, SourceSpec};

pub fn ensure_interpreter(request: &BuildRequest, progress: &Progress) -> Result<Interpreter> {
    if let Some(version) = &request.version {
        versions::validate_request(version)?;
        versions::ensure_free_threading(version)?;
    }
    let layout = Layout::new(&request.cache_dir);
    if !request.force {
        if let Some(hit) = cached_for(request, &layout)? {
            progress.note(&format!(
                "using cached CPython {} ({}, source {} {}) at {}",
                hit.version,
                hit.cc,
                hit.source.kind,
                hit.source.location,
                hit.python.display()
            ));
            return Ok(hit);
        }
    }
    let compiler = host::choose_compiler(request.compiler)?;
    host::ensure_prerequisites(&compiler.cc)?;
    let (work, removed) = WorkDir::create(&layout)?;
    if removed > 0 {
        progress.note(&format!(
            "removed {removed} leftover(s) of interrupted builds"
        ));
    }
    let logs = layout
        .root
        .join("logs")
        .join(work.path().file_name().expect("named"));
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let (obtained, tree, version) =
        prepare_sources(request, &layout, work.path(), &logs, progress)?;

    let key = cache::entry_key(&version, compiler.family, obtained.custom_tag().as_deref());
    let _lock = cache::lock_key(&layout, &key, |lock| {
        progress.note(&format!(
            "waiting for another ftreview building {key} (lock {})",
            lock.display()
        ))
    })?;
    // A build we waited for may have died and left its work directory.
    cache::remove_abandoned_work(&layout);
    if !request.force {
        // Another process may have published it while we waited.
        if let Ok(manifest) = cache::load_entry(&layout.entry(&key)) {
            return Ok(cache::interpreter_of(&manifest));
        }
    }
    let job = BuildJob {
        layout: &layout,
        work: work.path(),
        logs: &logs,
        tree: &tree,
        key: &key,
        version: &version,
        compiler: &compiler,
        jobs: request.jobs.unwrap_or_else(default_jobs),
        record: obtained.record,
    };
    let started = std::time::Instant::now();
    let built = build_and_publish(&job, progress);
    // A build we waited for releases the key's lock a moment before its work directory's;
    // once ours is over, what it left is surely abandoned.
    cache::remove_abandoned_work(&layout);
    let interpreter = built?;
    progress.note(&format!(
        "built and verified CPython {version} ({}) in {}: {}",
        compiler.cc,
        format_secs(started.elapsed().as_secs_f64()),
        interpreter.python.display()
    ));
    Ok(interpreter)
}

/// Fetches, announces and unpacks the sources; returns them with the tree and its version.
fn prepare_sources(
    request: &BuildRequest,
    layout: &Layout,
    work: &Path,
    logs: &Path,
    progress: &Progress,
) -> Result<(Obtained, PathBuf, String)> {
    let obtained = source::obtain(request, layout, logs, progress)?;
    progress.note(&describe_source(&obtained.record));
    let phase = progress.phase("unpacking sources", None);
    let tree = source::materialize(&obtained, work)?;
    phase.done();
    let version = checked_version(request, &obtained, &tree)?;
    Ok((obtained, tree, version))
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// "source: debian python3.13 3.13.5-2+deb13u5, sha256 93e5… (matches …)".
pub fn describe_source(record: &SourceRecord) -> String {
    let sha = record
        .sha256
        .as_deref()
        .map(|s| format!(", sha256 {s}"))
        .unwrap_or_default();
    format!(
        "source: {} {}{sha} ({})",
        record.kind, record.location, record.checksum_note
    )
}

/// The tree's own version, which must agree with what the source promised and the request.
fn checked_version(request: &BuildRequest, obtained: &Obtained, tree: &Path) -> Result<String> {
    let version = source::tree_version(tree)?;
    if let Some(expected) = &obtained.expected_version {
        if *expected != version {
            bail!(
                "{} should hold CPython {expected} but its Include/patchlevel.h says {version}",
                obtained.record.location
            );
        }
    }
    if let Some(wanted) = &request.version {
        if !versions::version_matches(wanted, &version) {
            bail!(
                "{} is CPython {version}, not the requested {wanted}",
                obtained.record.location
            );
        }
    }
    versions::ensure_free_threading(&version)?;
    Ok(version)
}

/// A valid cached build that satisfies the request, found without touching the network.
/// No compiler probing: `auto` takes any cached build (clang first), so a warm call only
/// reads manifests.
fn cached_for(request: &BuildRequest, layout: &Layout) -> Result<Option<Interpreter>> {
    let compiler = match request.compiler {
        CompilerChoice::Exactly(family) => Some(family),
        CompilerChoice::Auto => None,
    };
    let wanted = source::effective_request(request)?;
    let matches_source: Box<dyn Fn(&Interpreter) -> bool> = match &request.source {
        SourceSpec::Auto | SourceSpec::PythonOrg | SourceSpec::Debian => {
            Box::new(cache::is_official)
        }
        SourceSpec::Path(path) if path.is_dir() => {
            let location = path.canonicalize()?.display().to_string();
            let version = source::tree_version(path)?;
            Box::new(move |i| {
                i.source.kind == SourceKind::LocalDir
                    && i.source.location == location
                    && i.version == version
            })
        }
        SourceSpec::Path(path) if path.is_file() => by_sha256(fetch::sha256_file(path)?),
        SourceSpec::Url(url) => match source::downloaded_url(layout, url) {
            Some(tarball) => by_sha256(fetch::sha256_file(&tarball)?),
            None => return Ok(None),
        },
        SourceSpec::Path(_) => return Ok(None),
    };
    let version_filter = match &request.source {
        // A tarball or directory is whatever version it holds.
        SourceSpec::Path(_) | SourceSpec::Url(_) => request.version.clone().unwrap_or_default(),
        _ => wanted,
    };
    Ok(cache::list_cached(&layout.root)?.into_iter().find(|i| {
        compiler.is_none_or(|c| c == i.compiler)
            && (version_filter.is_empty() || versions::version_matches(&version_filter, &i.version))
            && matches_source(i)
    }))
}

fn by_sha256(sha256: String) -> Box<dyn Fn(&Interpreter) -> bool> {
    Box::new(move |i| i.source.sha256.as_deref() == Some(sha256.as_str()))
}

struct BuildJob<'a> {
    layout: &'a Layout,
    work: &'a Path,
    logs: &'a Path,
    tree: &'a Path,
    key: &'a str,
    version: &'a str,
    compiler: &'a CompilerInfo,
    jobs: usize,
    record: SourceRecord,
}

/// Builds with the final prefix, installs into staging, assembles the entry next to it,
/// verifies the staged interpreter, and publishes (manifest last, then one rename).
fn build_and_publish(job: &BuildJob, progress: &Progress) -> Result<Interpreter> {
    let entry = job.layout.entry(job.key);
    let prefix = cache::install_prefix(&entry);
    let plan = BuildPlan {
        tree: job.tree,
        prefix: &prefix,
        staging: &job.work.join("staging"),
        compiler: job.compiler,
        jobs: job.jobs,
        logs: job.logs,
    };
    let mut timings = build::build(&plan, progress)?;

    let staged_entry = job.work.join("entry");
    let staged_prefix = cache::install_prefix(&staged_entry);
    fs::create_dir_all(&staged_entry)?;
    let tsan_files = build::collect_install(&plan, &staged_prefix, &staged_entry.join("tsan"))?;
    let staged_python = cache::python_in(&staged_prefix, job.version);
    let lib =
        |prefix: &Path| prefix.join(format!("lib/python{}t", versions::minor_of(job.version)));
    // Missing .pyc files only cost time at first import: a failure here is not fatal.
    match build::byte_compile(
        &plan,
        &staged_python,
        &lib(&staged_prefix),
        &lib(&prefix),
        progress,
    ) {
        Ok(timing) => timings.push(timing),
        Err(e) => progress.note(&format!("warning: {e:#}")),
    }

    let verify_log = job.logs.join("verify.log");
    let phase = progress.phase(
        "verifying: GIL off, -fsanitize=thread, canary race reported, venv + pip",
        Some(&verify_log),
    );
    let verification = verify::verify(
        &staged_python,
        job.compiler,
        &job.logs.join("canary"),
        &job.work.join("venv"),
        &verify_log,
    )
    .with_context(|| format!("verification failed (log: {})", verify_log.display()))?;
    timings.push(("verify".into(), phase.done()));

    // The logs (and the canary) move into the entry: one place per interpreter.
    fs::rename(job.logs, staged_entry.join("logs"))
        .with_context(|| format!("cannot move {} into the entry", job.logs.display()))?;
    let configure_args = build::configure_args(&prefix);
    let suppressions = tsan_files
        .iter()
        .map(|f| entry.join("tsan").join(f.file_name().expect("named")))
        .collect();
    let manifest = Manifest {
        schema: cache::SCHEMA,
        key: job.key.to_string(),
        interpreter: Interpreter {
            python: cache::python_in(&prefix, job.version),
            prefix: prefix.clone(),
            version: job.version.to_string(),
            compiler: job.compiler.family,
            cc: job.compiler.cc.clone(),
            suppressions,
            needs_setarch: false,
            symbolizer: host::symbolizer_for(job.compiler.family),
            source: job.record.clone(),
        },
        python_size: fs::metadata(&staged_python)?.len(),
        configure_args,
        jobs: job.jobs,
        verification,
        timings,
        created: cache::unix_now(),
    };
    cache::publish(job.layout, &staged_entry, &manifest)?;
    Ok(cache::interpreter_of(&manifest))
}
