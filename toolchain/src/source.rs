//! Turning a `--source` choice into an unpacked CPython source tree plus a record of where
//! it came from and how its checksum was checked.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::archive;
use crate::cache::Layout;
use crate::debian;
use crate::fetch::{self, FetchError};
use crate::interpreter::{SourceKind, SourceRecord};
use crate::progress::Progress;
use crate::versions;
use crate::{BuildRequest, SourceSpec};

/// Sources obtained but not yet unpacked.
pub struct Obtained {
    pub origin: Origin,
    pub record: SourceRecord,
    /// Version known before unpacking (python.org, Debian), checked against the tree later.
    pub expected_version: Option<String>,
}

pub enum Origin {
    Tarball(PathBuf),
    Directory(PathBuf),
}

impl Obtained {
    /// A release tarball (python.org's, Debian's copy, or any file with a pinned checksum)
    /// gets the plain cache key; anything else is tagged so it never shadows the release.
    /// Only release tarballs promise their version before unpacking.
    pub fn custom_tag(&self) -> Option<String> {
        if self.expected_version.is_some() {
            return None;
        }
        Some(match (&self.record.kind, &self.record.sha256) {
            (SourceKind::LocalDir, _) | (_, None) => {
                format!("dir-{}", short_hash(&self.record.location))
            }
            (_, Some(sha256)) => sha256[..8].to_string(),
        })
    }
}

fn short_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..8].to_string()
}

/// The version request with its default: the minor series of the newest pinned release
/// (so Debian may offer its newest patch of it).
pub fn effective_request(request: &BuildRequest) -> Result<String> {
    match &request.version {
        Some(v) => Ok(v.clone()),
        None => Ok(versions::minor_of(versions::resolve_known(None)?.version)),
    }
}

/// Fetches (or locates) the sources the request names.
pub fn obtain(
    request: &BuildRequest,
    layout: &Layout,
    logs: &Path,
    progress: &Progress,
) -> Result<Obtained> {
    let version = effective_request(request)?;
    let base = fetch::python_org_base(request.python_org_mirror.as_deref());
    match &request.source {
        SourceSpec::PythonOrg => from_python_org(&version, &base, layout, progress),
        SourceSpec::Debian => from_debian(&version, layout, logs, progress),
        SourceSpec::Auto if versions::resolve_known(Some(&version)).is_err() => {
            progress.note(&format!(
                "no pinned python.org checksum for CPython {version}; using Debian's source \
                 package, whose checksum Debian signs"
            ));
            from_debian(&version, layout, logs, progress)
        }
        SourceSpec::Auto => match from_python_org(&version, &base, layout, progress) {
            Err(e) if is_unreachable(&e) => {
                progress.note(&format!(
                    "python.org is unreachable ({e:#}); falling back to Debian's source package"
                ));
                from_debian(&version, layout, logs, progress).with_context(|| {
                    format!("python.org is unreachable ({e:#}) and the Debian fallback failed")
                })
            }
            other => other,
        },
        SourceSpec::Url(url) => from_url(url, request.sha256.as_deref(), layout, progress),
        SourceSpec::Path(path) if path.is_dir() => from_directory(path),
        SourceSpec::Path(path) if path.is_file() => from_tarball(
            path,
            request.sha256.as_deref(),
            SourceKind::LocalTarball,
            path.display().to_string(),
        ),
        SourceSpec::Path(path) => bail!(
            "--source {}: no such file or directory (expected auto, python.org, debian, a URL, \
             a tarball or a CPython source directory)",
            path.display()
        ),
    }
}

fn is_unreachable(err: &anyhow::Error) -> bool {
    err.downcast_ref::<FetchError>()
        .is_some_and(|e| matches!(e, FetchError::Unreachable { .. }))
}

fn from_python_org(
    request: &str,
    base: &str,
    layout: &Layout,
    progress: &Progress,
) -> Result<Obtained> {
    let release = versions::resolve_known(Some(request))?;
    let url = fetch::python_org_url(base, release.version);
    let tarball = layout
        .downloads()
        .join(format!("Python-{}.tar.xz", release.version));
    let reused = tarball.is_file() && fetch::sha256_file(&tarball)? == release.sha256;
    if !reused {
        fs::create_dir_all(layout.downloads())?;
        let phase = progress.phase(&format!("downloading {url}"), None);
        let sha256 = fetch::download(&url, &tarball)?;
        phase.done();
        if let Err(e) = fetch::check_sha256(&url, release.sha256, &sha256) {
            let _ = fs::remove_file(&tarball);
            return Err(e);
        }
    }
    Ok(Obtained {
        origin: Origin::Tarball(tarball),
        record: SourceRecord {
            kind: SourceKind::PythonOrg,
            location: url,
            sha256: Some(release.sha256.to_string()),
            checksum_note: format!(
                "matches the pinned python.org checksum{}",
                if reused { "; cached download" } else { "" }
            ),
        },
        expected_version: Some(release.version.to_string()),
    })
}

fn from_debian(
    request: &str,
    layout: &Layout,
    logs: &Path,
    progress: &Progress,
) -> Result<Obtained> {
    let log = logs.join("apt.log");
    let phase = progress.phase("fetching Debian's CPython source package", Some(&log));
    let candidates = debian::candidates(request, &log)?;
    let got = debian::download(&candidates, &layout.downloads().join("debian"), &log)?;
    phase.done();
    let upstream = &got.candidate.upstream;
    let pinned = versions::pinned_sha256(upstream);
    if let Some(pinned) = pinned {
        fetch::check_sha256(&got.candidate.orig_file, pinned, &got.sha256)
            .context("Debian's orig tarball differs from the pinned python.org tarball")?;
    }
    let mut checksum_note = match pinned {
        Some(_) => "matches Debian's signed index and the pinned python.org checksum".to_string(),
        None => {
            format!("matches Debian's signed index (no pinned python.org checksum for {upstream})")
        }
    };
    if got.reused {
        checksum_note.push_str("; cached download");
    }
    Ok(Obtained {
        origin: Origin::Tarball(got.tarball),
        record: SourceRecord {
            kind: SourceKind::Debian,
            location: format!("{} {}", got.candidate.package, got.candidate.version),
            sha256: Some(got.sha256),
            checksum_note,
        },
        expected_version: Some(upstream.clone()),
    })
}

fn url_download_path(layout: &Layout, url: &str) -> PathBuf {
    layout
        .downloads()
        .join(format!("url-{}", short_hash(url)))
        .join(fetch::file_name_of(url))
}

/// The earlier download of `url`, if one was kept.
pub fn downloaded_url(layout: &Layout, url: &str) -> Option<PathBuf> {
    Some(url_download_path(layout, url)).filter(|p| p.is_file())
}

fn from_url(
    url: &str,
    sha256: Option<&str>,
    layout: &Layout,
    progress: &Progress,
) -> Result<Obtained> {
    let tarball = url_download_path(layout, url);
    if !tarball.is_file() {
        fs::create_dir_all(tarball.parent().expect("has a parent"))?;
        let phase = progress.phase(&format!("downloading {url}"), None);
        fetch::download(url, &tarball)?;
        phase.done();
    }
    let obtained = from_tarball(&tarball, sha256, SourceKind::Url, url.to_string());
    if obtained.is_err() {
        // A refused download must not be picked up by the next run.
        let _ = fs::remove_file(&tarball);
    }
    obtained
}

fn from_tarball(
    tarball: &Path,
    expected: Option<&str>,
    kind: SourceKind,
    location: String,
) -> Result<Obtained> {
    let sha256 = fetch::sha256_file(tarball)?;
    if let Some(expected) = expected {
        fetch::check_sha256(&location, expected, &sha256)?;
    }
    let pinned_match = versions::known_releases()
        .into_iter()
        .find(|r| r.sha256 == sha256)
        .map(|r| r.version);
    let checksum_note = match (expected, pinned_match) {
        (_, Some(v)) => format!("matches the pinned python.org checksum of {v}"),
        (Some(_), None) => "matches --sha256".to_string(),
        (None, None) => {
            "not verified: no --sha256 given and not a pinned python.org release".to_string()
        }
    };
    Ok(Obtained {
        origin: Origin::Tarball(tarball.to_path_buf()),
        record: SourceRecord {
            kind,
            location,
            sha256: Some(sha256),
            checksum_note,
        },
        expected_version: pinned_match.map(str::to_string),
    })
}

fn from_directory(dir: &Path) -> Result<Obtained> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    Ok(Obtained {
        record: SourceRecord {
            kind: SourceKind::LocalDir,
            location: dir.display().to_string(),
            sha256: None,
            checksum_note: "source directory (no checksum)".into(),
        },
        origin: Origin::Directory(dir),
        expected_version: None,
    })
}

/// Unpacks or copies the sources into `work` and returns the tree to build in.
pub fn materialize(obtained: &Obtained, work: &Path) -> Result<PathBuf> {
    let tree = match &obtained.origin {
        Origin::Tarball(tarball) => archive::unpack(tarball, &work.join("src"))?,
        Origin::Directory(dir) => copy_tree(dir, &work.join("src").join("cpython"))?,
    };
    if !tree.join("configure").is_file() {
        bail!(
            "{} does not look like a CPython source tree (no configure script)",
            obtained.record.location
        );
    }
    Ok(tree)
}

/// Copies a source directory (without `.git`), so building never touches the user's tree.
fn copy_tree(from: &Path, to: &Path) -> Result<PathBuf> {
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
    {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let dest = to.join(entry.path().strip_prefix(from)?);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &dest)?;
        } else {
            fs::copy(entry.path(), &dest)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(to.to_path_buf())
}

/// `PY_VERSION` from `Include/patchlevel.h`.
pub fn tree_version(tree: &Path) -> Result<String> {
    let header = tree.join("Include/patchlevel.h");
    let text = fs::read_to_string(&header).with_context(|| {
        format!(
            "not a CPython source tree: cannot read {}",
            header.display()
        )
    })?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("#define PY_VERSION")?
                .trim()
                .strip_prefix('"')?
                .split('"')
                .next()
        })
        .map(|v| v.trim_end_matches('+').to_string())
        .with_context(|| format!("no PY_VERSION in {}", header.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_of_a_real_tree_layout() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("Include")).unwrap();
        fs::write(
            dir.path().join("Include/patchlevel.h"),
            "#define PY_MINOR_VERSION 13\n#define PY_VERSION      \t\"3.13.5+\"\n",
        )
        .unwrap();
        assert_eq!(tree_version(dir.path()).unwrap(), "3.13.5");
        assert!(tree_version(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn copies_a_tree_without_git_keeping_modes_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join(".git")).unwrap();
        fs::create_dir_all(src.join("Tools")).unwrap();
        fs::write(src.join("configure"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("configure"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("configure", src.join("link")).unwrap();
        let out = copy_tree(&src, &dir.path().join("out")).unwrap();
        assert!(!out.join(".git").exists());
        assert_eq!(
            fs::metadata(out.join("configure"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(out.join("link")).unwrap(),
            PathBuf::from("configure")
        );
    }
}
