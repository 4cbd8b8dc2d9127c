//! What the user asked to run: a PyPI requirement, a local source tree or tarball, or a git URL
//! with a revision. `fetch` turns any of them into a source tree kept inside the run directory.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

mod index;

use anyhow::{bail, Context};
use ftreview_toolchain::{sha256_file, unpack_archive};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub(crate) use index::{normalize, Index, IndexFile};

/// A parsed target argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetSpec {
    /// `name` or `name==version`.
    Pypi {
        name: String,
        version: Option<String>,
    },
    /// A directory holding pyproject.toml or setup.py.
    Dir { path: PathBuf },
    /// An sdist-like archive on disk.
    Archive { path: PathBuf },
    /// `git+URL[@rev]`.
    Git { url: String, rev: Option<String> },
}

impl TargetSpec {
    pub fn parse(raw: &str) -> anyhow::Result<TargetSpec> {
        if let Some(rest) = raw.strip_prefix("git+") {
            return Ok(parse_git(rest));
        }
        let path = Path::new(raw);
        if path.is_dir() {
            return Ok(TargetSpec::Dir {
                path: fs::canonicalize(path)?,
            });
        }
        if path.is_file() {
            return Ok(TargetSpec::Archive {
                path: fs::canonicalize(path)?,
            });
        }
        if raw.contains('/') || is_archive_name(raw) {
            bail!("{raw}: no such file or directory (a local target must exist; a PyPI target is a name like `multidict` or `multidict==6.7.1`)");
        }
        parse_requirement(raw)
    }

    /// A short name for directories and summaries.
    pub fn slug(&self) -> String {
        let raw = match self {
            TargetSpec::Pypi {
                name,
                version: Some(v),
            } => format!("{name}-{v}"),
            TargetSpec::Pypi {
                name,
                version: None,
            } => name.clone(),
            TargetSpec::Dir { path } | TargetSpec::Archive { path } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                strip_archive_suffix(&name).to_string()
            }
            TargetSpec::Git { url, rev } => {
                let repo = url
                    .trim_end_matches('/')
                    .trim_end_matches(".git")
                    .rsplit('/')
                    .next()
                    .unwrap_or("git");
                match rev {
                    Some(rev) => format!("{repo}-{rev}"),
                    None => repo.to_string(),
                }
            }
        };
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Pypi {
                name,
                version: Some(v),
            } => write!(f, "{name}=={v}"),
            TargetSpec::Pypi {
                name,
                version: None,
            } => write!(f, "{name}"),
            TargetSpec::Dir { path } | TargetSpec::Archive { path } => {
                write!(f, "{}", path.display())
            }
            TargetSpec::Git {
                url,
                rev: Some(rev),
            } => write!(f, "git+{url}@{rev}"),
            TargetSpec::Git { url, rev: None } => write!(f, "git+{url}"),
        }
    }
}

fn parse_git(rest: &str) -> TargetSpec {
    // The revision follows the last '@' after the host part (user@host URLs keep their '@').
    let path_start = rest.find("://").map(|i| i + 3).unwrap_or(0);
    let after_host = rest[path_start..]
        .find('/')
        .map(|i| path_start + i)
        .unwrap_or(rest.len());
    match rest[after_host..].rfind('@') {
        Some(i) => TargetSpec::Git {
            url: rest[..after_host + i].to_string(),
            rev: Some(rest[after_host + i + 1..].to_string()),
        },
        None => TargetSpec::Git {
            url: rest.to_string(),
            rev: None,
        },
    }
}

fn parse_requirement(raw: &str) -> anyhow::Result<TargetSpec> {
    let (name, version) = match raw.split_once("==") {
        Some((name, version)) => (name.trim(), Some(version.trim().to_string())),
        None => (raw.trim(), None),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid
        || version
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.contains(|c: char| "<>=!~, ".contains(c)))
    {
        bail!("{raw}: not a target; use a PyPI name with an optional exact version (`multidict==6.7.1`), a source directory, an sdist, or git+URL@rev");
    }
    Ok(TargetSpec::Pypi {
        name: name.to_string(),
        version,
    })
}

fn is_archive_name(name: &str) -> bool {
    strip_archive_suffix(name) != name
}

pub fn strip_archive_suffix(name: &str) -> &str {
    for suffix in [".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar", ".zip"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return stem;
        }
    }
    name
}

/// A source tree ready to build, kept inside the run directory.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub root: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
    /// SHA-256 of the sdist (PyPI, archive) or of the tree's files (directory, git checkout):
    /// with the interpreter it keys the build cache.
    pub sha256: String,
    /// Where it came from (URL, path, git URL and commit).
    pub origin: String,
}

/// Fetches a target into `dest_dir` (created) and returns the kept tree.
pub fn fetch(spec: &TargetSpec, index: &Index, dest_dir: &Path) -> anyhow::Result<Source> {
    fs::create_dir_all(dest_dir)?;
    match spec {
        TargetSpec::Pypi { name, version } => {
            let sdist = index.find_sdist(name, version.as_deref())?;
            let archive = dest_dir.join(&sdist.filename);
            index.download(&sdist, &archive)?;
            let root = unpack_archive(&archive, &dest_dir.join("src"))?;
            Ok(Source {
                root,
                name: Some(name.clone()),
                version: Some(sdist.version.clone()),
                sha256: sdist.sha256.clone(),
                origin: sdist_origin(&sdist),
            })
        }
        TargetSpec::Archive { path } => {
            let sha256 = sha256_file(path)?;
            let root = unpack_archive(path, &dest_dir.join("src"))?;
            Ok(Source {
                root,
                name: None,
                version: None,
                sha256,
                origin: path.display().to_string(),
            })
        }
        TargetSpec::Dir { path } => {
            let root = dest_dir.join("src");
            copy_tree(path, &root)?;
            Ok(Source {
                sha256: tree_sha256(&root)?,
                root,
                name: None,
                version: None,
                origin: path.display().to_string(),
            })
        }
        TargetSpec::Git { url, rev } => clone_git(url, rev.as_deref(), &dest_dir.join("src")),
    }
}

fn sdist_origin(sdist: &IndexFile) -> String {
    format!("{} (sha256 {})", sdist.url, sdist.sha256)
}

fn clone_git(url: &str, rev: Option<&str>, dest: &Path) -> anyhow::Result<Source> {
    let git = |args: &[&str], cwd: &Path| -> anyhow::Result<String> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .context("cannot run git (is it installed?)")?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let parent = dest.parent().unwrap_or(Path::new("."));
    git(&["clone", "--quiet", url, &dest.to_string_lossy()], parent)
        .with_context(|| format!("cannot clone {url}"))?;
    if let Some(rev) = rev {
        git(&["checkout", "--quiet", rev], dest)
            .with_context(|| format!("{url} has no revision {rev}"))?;
    }
    git(
        &["submodule", "update", "--init", "--recursive", "--quiet"],
        dest,
    )?;
    let commit = git(&["rev-parse", "HEAD"], dest)?;
    Ok(Source {
        root: dest.to_path_buf(),
        name: None,
        version: None,
        sha256: tree_sha256(dest)?,
        origin: format!("git+{url}@{commit}"),
    })
}

/// Files that are build products or VCS metadata, not sources.
fn is_build_product(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        matches!(
            c.as_ref(),
            ".git" | "build" | "dist" | "__pycache__" | ".tox" | ".nox" | ".venv"
        ) || c.ends_with(".egg-info")
    }) || path
        .extension()
        .is_some_and(|e| e == "so" || e == "o" || e == "pyc")
}

/// A content hash of a tree's source files (paths and bytes, in sorted order).
pub fn tree_sha256(root: &Path) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let walker = walkdir::WalkDir::new(root).sort_by_file_name();
    for entry in walker {
        let entry = entry?;
        let rel = entry.path().strip_prefix(root)?;
        if !entry.file_type().is_file() || is_build_product(rel) {
            continue;
        }
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(fs::read(entry.path())?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copies a source directory without build products, so a build never picks up stale objects.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry?;
        let rel = entry.path().strip_prefix(from)?;
        if is_build_product(rel) {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest)?;
        } else if entry.file_type().is_file() {
            fs::copy(entry.path(), &dest)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pypi_requirements() {
        assert_eq!(
            TargetSpec::parse("multidict").unwrap(),
            TargetSpec::Pypi {
                name: "multidict".into(),
                version: None
            }
        );
        assert_eq!(
            TargetSpec::parse("multidict==6.7.1").unwrap(),
            TargetSpec::Pypi {
                name: "multidict".into(),
                version: Some("6.7.1".into())
            }
        );
        assert!(TargetSpec::parse("multidict>=6").is_err());
        assert!(TargetSpec::parse("multidict==").is_err());
    }

    #[test]
    fn parses_git_urls_with_and_without_rev() {
        assert_eq!(
            TargetSpec::parse("git+https://github.com/aio-libs/multidict@v6.7.1").unwrap(),
            TargetSpec::Git {
                url: "https://github.com/aio-libs/multidict".into(),
                rev: Some("v6.7.1".into())
            }
        );
        assert_eq!(
            TargetSpec::parse("git+ssh://git@github.com/a/b.git").unwrap(),
            TargetSpec::Git {
                url: "ssh://git@github.com/a/b.git".into(),
                rev: None
            }
        );
    }

    #[test]
    fn missing_local_paths_are_not_taken_for_package_names() {
        let err = TargetSpec::parse("./nope/pkg").unwrap_err().to_string();
        assert!(err.contains("no such file"), "{err}");
        assert!(TargetSpec::parse("pkg-1.0.tar.gz").is_err());
    }

    #[test]
    fn slugs_are_path_safe() {
        assert_eq!(
            TargetSpec::parse("multidict==6.7.1").unwrap().slug(),
            "multidict-6.7.1"
        );
        let git = TargetSpec::Git {
            url: "https://x/a/b.git".into(),
            rev: Some("v1/2".into()),
        };
        assert_eq!(git.slug(), "b-v1_2");
    }

    #[test]
    fn tree_hash_ignores_build_products_and_sees_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.c"), "int x;").unwrap();
        let before = tree_sha256(dir.path()).unwrap();
        fs::create_dir(dir.path().join("build")).unwrap();
        fs::write(dir.path().join("build/a.o"), "obj").unwrap();
        assert_eq!(tree_sha256(dir.path()).unwrap(), before);
        fs::write(dir.path().join("a.c"), "int y;").unwrap();
        assert_ne!(tree_sha256(dir.path()).unwrap(), before);
    }

    /// A zip sdist with one top-level directory, and its SHA-256.
    fn zip_sdist(path: &Path, root: &str) -> String {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        for (name, text) in [
            ("setup.py", "from setuptools import setup\n"),
            ("m.c", "int x;\n"),
        ] {
            zip.start_file(format!("{root}/{name}"), options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        sha256_file(path).unwrap()
    }

    /// Serves `files` (URL path → content type and body) on 127.0.0.1; 404 for the rest.
    fn serve(files: Vec<(String, &'static str, Vec<u8>)>) -> String {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = String::new();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let _ = reader.read_line(&mut request);
                let path = request.split_whitespace().nth(1).unwrap_or_default();
                let (status, kind, body) = match files.iter().find(|(p, _, _)| p == path) {
                    Some((_, kind, body)) => ("200 OK", *kind, body.as_slice()),
                    None => ("404 Not Found", "text/plain", &b""[..]),
                };
                let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        base
    }

    #[test]
    fn a_zip_sdist_on_the_index_is_downloaded_checked_and_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let sdist = dir.path().join("zip_only-1.0.zip");
        let sha256 = zip_sdist(&sdist, "zip_only-1.0");
        let page = format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "name": "zip-only", "files": [{{"filename": "zip_only-1.0.zip", "url": "/files/zip_only-1.0.zip", "hashes": {{"sha256": "{sha256}"}}}}]}}"#
        );
        let base = serve(vec![
            (
                "/simple/zip-only/".into(),
                "application/vnd.pypi.simple.v1+json",
                page.into_bytes(),
            ),
            (
                "/files/zip_only-1.0.zip".into(),
                "application/zip",
                fs::read(&sdist).unwrap(),
            ),
        ]);
        let spec = TargetSpec::parse("zip-only").unwrap();
        let index = Index::new(&format!("{base}/simple/"));
        let source = fetch(&spec, &index, &dir.path().join("fetch")).unwrap();
        assert_eq!(source.root, dir.path().join("fetch/src/zip_only-1.0"));
        assert!(source.root.join("setup.py").is_file());
        assert_eq!(source.version.as_deref(), Some("1.0"));
        assert_eq!(source.sha256, sha256);
    }

    #[test]
    fn a_local_zip_sdist_is_a_target_like_a_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let sdist = dir.path().join("pkg-1.0.zip");
        let sha256 = zip_sdist(&sdist, "pkg-1.0");
        let spec = TargetSpec::parse(sdist.to_str().unwrap()).unwrap();
        assert!(matches!(spec, TargetSpec::Archive { .. }), "{spec:?}");
        assert_eq!(spec.slug(), "pkg-1.0");
        let source = fetch(
            &spec,
            &Index::new("http://127.0.0.1:9/"),
            &dir.path().join("f"),
        )
        .unwrap();
        assert!(source.root.join("m.c").is_file());
        assert_eq!(source.sha256, sha256);
    }

    #[test]
    fn copies_a_directory_without_build_products() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir_all(from.join("pkg/__pycache__")).unwrap();
        fs::write(from.join("pkg/m.c"), "int x;").unwrap();
        fs::write(from.join("pkg/__pycache__/m.pyc"), "").unwrap();
        fs::write(from.join("pkg/m.so"), "").unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to).unwrap();
        assert!(to.join("pkg/m.c").is_file());
        assert!(!to.join("pkg/__pycache__").exists());
        assert!(!to.join("pkg/m.so").exists());
    }
}
