//! The interpreter cache: one directory per (version, compiler[, custom source]) under
//! `<cache>/pythons/`, published atomically. An entry counts only when its `manifest.json`
//! (written last, before the final rename) parses and the files it vouches for are there.
//!
//! ```text
//! <cache>/pythons/cpython-3.13.5-clang/{manifest.json, install/, tsan/, logs/}
//! <cache>/work/<key>.<pid>/     builds in progress (or interrupted)
//! <cache>/locks/<key>.lock      one build per key at a time
//! <cache>/downloads/            source tarballs, kept for rebuilds
//! ```

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::host::{self, Compiler};
use crate::interpreter::Interpreter;
use crate::versions;

const MANIFEST: &str = "manifest.json";
pub(crate) const SCHEMA: u32 = 1;

/// `$FTREVIEW_CACHE_DIR`, else `$XDG_CACHE_HOME/ftreview` (`~/.cache/ftreview`).
/// A `--cache-dir` flag, where a command has one, wins over both.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FTREVIEW_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ftreview-{}", unsafe_uid())))
        .join("ftreview")
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// What a published entry records. Written last: its presence marks the entry complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub key: String,
    pub interpreter: Interpreter,
    /// Size of the python executable when published: a truncated or replaced binary
    /// invalidates the entry.
    pub python_size: u64,
    pub configure_args: Vec<String>,
    pub jobs: usize,
    pub verification: Verification,
    /// Wall time of each phase in seconds, in order.
    pub timings: Vec<(String, f64)>,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// The checks run before publishing, with what each found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// `sys._is_gil_enabled()` printed False.
    pub gil_disabled: bool,
    /// The interpreter's `CFLAGS` (contains `-fsanitize=thread`).
    pub cflags: String,
    /// First line of the canary's TSan report (`WARNING: ThreadSanitizer: data race ...`)
    /// and the frame naming the canary function.
    pub canary_report: String,
    /// `pip --version` inside a fresh venv.
    pub pip_version: String,
}

/// Paths of the cache.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub fn pythons(&self) -> PathBuf {
        self.root.join("pythons")
    }
    pub fn entry(&self, key: &str) -> PathBuf {
        self.pythons().join(key)
    }
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    fn lock_file(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.lock"))
    }
}

/// Cache key: `cpython-<version>-<compiler>`, plus a tag for sources that are not an
/// official release tarball (so a patched checkout never shadows the real release).
pub fn entry_key(version: &str, compiler: Compiler, custom_tag: Option<&str>) -> String {
    match custom_tag {
        Some(tag) => format!("cpython-{version}-{compiler}-{tag}"),
        None => format!("cpython-{version}-{compiler}"),
    }
}

/// Where an entry's interpreter is installed (baked into it at configure time).
pub fn install_prefix(entry: &Path) -> PathBuf {
    entry.join("install")
}

/// Python's executable inside an install prefix: `bin/python3.13t`.
pub fn python_in(prefix: &Path, version: &str) -> PathBuf {
    prefix
        .join("bin")
        .join(format!("python{}t", versions::minor_of(version)))
}

/// Loads and checks one entry. Errors say why it does not count.
pub fn load_entry(entry: &Path) -> Result<Manifest> {
    let path = entry.join(MANIFEST);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("no manifest at {} (unfinished build?)", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("corrupt manifest {}", path.display()))?;
    if manifest.schema != SCHEMA {
        bail!(
            "manifest {} has schema {} (expected {SCHEMA})",
            path.display(),
            manifest.schema
        );
    }
    let interp = &manifest.interpreter;
    let size = fs::metadata(&interp.python).map(|m| m.len()).ok();
    if size != Some(manifest.python_size) {
        bail!(
            "{} is missing or changed since it was published",
            interp.python.display()
        );
    }
    let landmark = interp
        .prefix
        .join("lib")
        .join(format!("python{}t", versions::minor_of(&interp.version)))
        .join("os.py");
    if !landmark.is_file() {
        bail!("standard library missing: {} not found", landmark.display());
    }
    if let Some(missing) = interp.suppressions.iter().find(|s| !s.is_file()) {
        bail!("suppression file {} missing", missing.display());
    }
    Ok(manifest)
}

/// The manifest (build record, verification results) of a cached interpreter.
pub fn load_manifest(interpreter: &Interpreter) -> Result<Manifest> {
    let entry = interpreter.prefix.parent().with_context(|| {
        format!(
            "{} is not in an ftreview cache",
            interpreter.prefix.display()
        )
    })?;
    load_entry(entry)
}

/// The interpreter of a manifest, with this machine's facts (ASLR, symbolizer) filled in.
pub fn interpreter_of(manifest: &Manifest) -> Interpreter {
    let mut interp = manifest.interpreter.clone();
    interp.needs_setarch = host::needs_setarch();
    interp.symbolizer = host::symbolizer_for(interp.compiler);
    interp
}

/// Every valid cached interpreter, newest version first (clang before gcc on ties).
pub fn list_cached(cache_dir: &Path) -> Result<Vec<Interpreter>> {
    let pythons = Layout::new(cache_dir).pythons();
    let read = match fs::read_dir(&pythons) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", pythons.display())),
    };
    let mut found: Vec<Interpreter> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| load_entry(&e.path()).ok())
        .map(|m| interpreter_of(&m))
        .collect();
    found.sort_by(|a, b| {
        versions::compare_versions(&b.version, &a.version)
            .then(b.compiler.cmp(&a.compiler))
            .then(a.python.cmp(&b.python))
    });
    Ok(found)
}

/// The newest valid cached interpreter matching `version_prefix` (`3.13` or `3.13.5`;
/// empty matches all) and, if given, the compiler. Official release builds win over custom
/// sources of the same version.
pub fn find_cached(
    cache_dir: &Path,
    version_prefix: &str,
    compiler: Option<Compiler>,
) -> Option<Interpreter> {
    let mut matching: Vec<Interpreter> = list_cached(cache_dir)
        .ok()?
        .into_iter()
        .filter(|i| {
            version_prefix.is_empty() || versions::version_matches(version_prefix, &i.version)
        })
        .filter(|i| compiler.is_none_or(|c| c == i.compiler))
        .collect();
    // Within a version, a build of the official release tarball beats a custom source.
    matching.sort_by(|a, b| {
        versions::compare_versions(&b.version, &a.version).then(is_official(b).cmp(&is_official(a)))
    });
    matching.into_iter().next()
}

/// Built from python.org's release tarball or Debian's copy of it.
pub(crate) fn is_official(interp: &Interpreter) -> bool {
    use crate::interpreter::SourceKind;
    matches!(
        interp.source.kind,
        SourceKind::PythonOrg | SourceKind::Debian
    ) || (interp.source.sha256.is_some()
        && interp.source.sha256.as_deref() == versions::pinned_sha256(&interp.version))
}

/// The cached entry a python executable belongs to, if any.
pub(crate) fn entry_for_python(python: &Path) -> Option<Interpreter> {
    let prefix = python.parent()?.parent()?;
    let entry = prefix.parent()?;
    let manifest = load_entry(entry).ok()?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same(&manifest.interpreter.python, python).then(|| interpreter_of(&manifest))
}

/// Exclusive lock on one cache key, held for a whole build. Released on drop (or when the
/// process dies, so a killed build never wedges the next one).
pub struct KeyLock {
    _file: File,
}

/// Takes the key's lock, telling `on_wait` if another process holds it first.
pub fn lock_key(layout: &Layout, key: &str, on_wait: impl FnOnce(&Path)) -> Result<KeyLock> {
    let path = layout.lock_file(key);
    fs::create_dir_all(path.parent().expect("lock file has a parent")).with_context(|| {
        format!(
            "cannot create the cache directory {}",
            layout.root.display()
        )
    })?;
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if file.try_lock_exclusive().is_err() {
        on_wait(&path);
        file.lock_exclusive()
            .with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(KeyLock { _file: file })
}

/// A private directory for one build, locked while the build runs. Dropping it removes it;
/// a build killed before that (Ctrl-C) leaves it unlocked, and the next build removes it.
pub struct WorkDir {
    path: PathBuf,
    _lock: File,
}

impl WorkDir {
    /// Creates this process's work directory and removes those of dead builds; returns it
    /// with the number of leftovers removed.
    pub fn create(layout: &Layout) -> Result<(WorkDir, usize)> {
        let work = layout.work();
        fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
        let removed = remove_abandoned(&work);
        // Lock first under a name the cleanup ignores, then rename: a concurrent cleanup
        // never sees this directory unlocked.
        static SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("build-{}-{}-{sequence}", unix_now(), std::process::id());
        let hidden = work.join(format!(".{name}"));
        fs::create_dir_all(&hidden)?;
        let lock = File::create(hidden.join(".lock"))?;
        lock.lock_exclusive()?;
        let path = work.join(name);
        fs::rename(&hidden, &path)?;
        Ok((WorkDir { path, _lock: lock }, removed))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes work directories nobody holds the lock of (their build died); returns how many.
pub fn remove_abandoned_work(layout: &Layout) -> usize {
    remove_abandoned(&layout.work())
}

fn remove_abandoned(work: &Path) -> usize {
    let Ok(read) = fs::read_dir(work) else {
        return 0;
    };
    read.filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|dir| {
            let abandoned = match File::open(dir.join(".lock")) {
                Ok(lock) => lock.try_lock_exclusive().is_ok(),
                // No lock file: a leftover from publishing or a crash before locking.
                Err(_) => dir.is_dir(),
            };
            abandoned && fs::remove_dir_all(dir).is_ok()
        })
        .count()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes the manifest into the staged entry (last file written), then renames the staged
/// entry into place. An invalid entry already at the destination is moved aside first.
pub fn publish(layout: &Layout, staged: &Path, manifest: &Manifest) -> Result<PathBuf> {
    let text = serde_json::to_string_pretty(manifest)?;
    let tmp = staged.join(format!("{MANIFEST}.tmp"));
    fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, staged.join(MANIFEST))?;
    let dest = layout.entry(&manifest.key);
    fs::create_dir_all(layout.pythons())?;
    if dest.exists() {
        let aside = layout
            .work()
            .join(format!("replaced-{}-{}", manifest.key, std::process::id()));
        fs::rename(&dest, &aside)
            .with_context(|| format!("cannot move the old entry {} aside", dest.display()))?;
        let _ = fs::remove_dir_all(&aside);
    }
    fs::rename(staged, &dest).with_context(|| {
        format!(
            "cannot move {} into place at {}",
            staged.display(),
            dest.display()
        )
    })?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpreter::{SourceKind, SourceRecord};

    /// Creates the files a manifest vouches for under `entry`.
    fn fake_install(entry: &Path, version: &str) {
        let prefix = install_prefix(entry);
        let python = python_in(&prefix, version);
        fs::create_dir_all(python.parent().unwrap()).unwrap();
        fs::write(&python, b"#!/bin/sh\n").unwrap();
        let lib = prefix.join(format!("lib/python{}t", versions::minor_of(version)));
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("os.py"), "").unwrap();
    }

    /// A manifest for an entry published at `entry` (paths are final ones, as when CPython
    /// is configured with its final prefix and installed into a staging directory).
    fn fake_manifest(entry: &Path, version: &str, compiler: Compiler) -> Manifest {
        let prefix = install_prefix(entry);
        Manifest {
            schema: SCHEMA,
            key: entry.file_name().unwrap().to_string_lossy().into_owned(),
            interpreter: Interpreter {
                python: python_in(&prefix, version),
                prefix,
                version: version.into(),
                compiler,
                cc: compiler.name().into(),
                suppressions: vec![],
                needs_setarch: false,
                symbolizer: None,
                source: SourceRecord {
                    kind: SourceKind::PythonOrg,
                    location: "test".into(),
                    sha256: None,
                    checksum_note: String::new(),
                },
            },
            python_size: 10,
            configure_args: vec![],
            jobs: 1,
            verification: Verification {
                gil_disabled: true,
                cflags: "-fsanitize=thread".into(),
                canary_report: String::new(),
                pip_version: String::new(),
            },
            timings: vec![],
            created: 0,
        }
    }

    fn stage_and_publish(layout: &Layout, version: &str, compiler: Compiler) -> PathBuf {
        let key = entry_key(version, compiler, None);
        let staged = layout.work().join(format!("staged-{key}"));
        fake_install(&staged, version);
        publish(
            layout,
            &staged,
            &fake_manifest(&layout.entry(&key), version, compiler),
        )
        .unwrap()
    }

    #[test]
    fn published_entries_are_listed_newest_first_and_found_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        stage_and_publish(&layout, "3.13.5", Compiler::Gcc);
        stage_and_publish(&layout, "3.13.10", Compiler::Clang);
        stage_and_publish(&layout, "3.14.0", Compiler::Gcc);
        let listed: Vec<String> = list_cached(dir.path())
            .unwrap()
            .iter()
            .map(|i| format!("{}-{}", i.version, i.compiler))
            .collect();
        assert_eq!(listed, ["3.14.0-gcc", "3.13.10-clang", "3.13.5-gcc"]);
        let found = find_cached(dir.path(), "3.13", None).unwrap();
        assert_eq!(found.version, "3.13.10");
        let gcc = find_cached(dir.path(), "3.13", Some(Compiler::Gcc)).unwrap();
        assert_eq!(gcc.version, "3.13.5");
        assert!(find_cached(dir.path(), "3.12", None).is_none());
    }

    #[test]
    fn entries_without_manifest_or_with_damaged_files_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let entry = stage_and_publish(&layout, "3.13.5", Compiler::Clang);
        assert_eq!(list_cached(dir.path()).unwrap().len(), 1);

        let python = python_in(&install_prefix(&entry), "3.13.5");
        fs::write(&python, b"truncated").unwrap();
        let err = load_entry(&entry).unwrap_err().to_string();
        assert!(err.contains("changed since it was published"), "{err}");

        fs::write(entry.join(MANIFEST), "{ not json").unwrap();
        assert!(format!("{:#}", load_entry(&entry).unwrap_err()).contains("corrupt manifest"));

        fs::remove_file(entry.join(MANIFEST)).unwrap();
        assert!(load_entry(&entry)
            .unwrap_err()
            .to_string()
            .contains("no manifest"));
        assert!(list_cached(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn abandoned_work_dirs_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let interrupted = layout.work().join("build-1-1");
        fs::create_dir_all(interrupted.join("src")).unwrap();
        File::create(interrupted.join(".lock")).unwrap();
        let (live, removed) = WorkDir::create(&layout).unwrap();
        assert_eq!(removed, 1);
        assert!(!interrupted.exists());
        // A concurrent build must not delete ours.
        let (_other, removed) = WorkDir::create(&layout).unwrap();
        assert_eq!(removed, 0);
        assert!(live.path().exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }

    #[test]
    fn a_second_lock_on_the_same_key_waits() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let held = lock_key(&layout, "k", |_| panic!("first lock must not wait")).unwrap();
        let file = File::open(layout.lock_file("k")).unwrap();
        assert!(file.try_lock_exclusive().is_err());
        drop(held);
        assert!(file.try_lock_exclusive().is_ok());
    }

    #[test]
    fn cache_dir_env_var_wins_over_xdg() {
        // Read-only check of the precedence rule without mutating the process environment.
        let from_env = std::env::var_os("FTREVIEW_CACHE_DIR").filter(|d| !d.is_empty());
        let dir = default_cache_dir();
        match from_env {
            Some(env) => assert_eq!(dir, PathBuf::from(env)),
            None => assert!(dir.ends_with("ftreview")),
        }
    }
}
