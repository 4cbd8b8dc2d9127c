//! CPython sources from Debian's archive (`apt-get source --download-only pythonX.Y`), for
//! machines that reach Debian's mirrors but not python.org. Debian's `.orig.tar.xz` is the
//! unmodified upstream tarball; apt checks it against the signed index.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fetch;
use crate::versions;

/// Where ftreview adds its `deb-src` entry on a machine that has none.
const SOURCES_FILE: &str = "/etc/apt/sources.list.d/ftreview-deb-src.sources";
const SOURCES_ENTRY: &str = "Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// One source package version apt can fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub package: String,
    /// Debian version (`3.13.5-2+deb13u5`).
    pub version: String,
    /// Upstream CPython version (`3.13.5`).
    pub upstream: String,
    pub orig_file: String,
    pub orig_sha256: String,
}

/// A downloaded orig tarball.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub candidate: Candidate,
    pub tarball: PathBuf,
    pub sha256: String,
    /// An earlier download was reused.
    pub reused: bool,
}

/// `3.13.5-2+deb13u5` → `3.13.5`; `1:3.14.0~rc1-1` → `3.14.0rc1`.
pub fn upstream_of(debian_version: &str) -> String {
    let no_epoch = debian_version
        .split_once(':')
        .map_or(debian_version, |(_, v)| v);
    let no_revision = no_epoch.rsplit_once('-').map_or(no_epoch, |(v, _)| v);
    no_revision.replace('~', "")
}

/// Parses `apt-cache showsrc` output into candidates that carry an orig tarball, newest
/// first.
pub fn parse_showsrc(text: &str) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = text.split("\n\n").filter_map(parse_paragraph).collect();
    found.sort_by(|a, b| {
        versions::compare_versions(&b.upstream, &a.upstream).then(b.version.cmp(&a.version))
    });
    found.dedup_by(|a, b| a.version == b.version && a.package == b.package);
    found
}

fn parse_paragraph(paragraph: &str) -> Option<Candidate> {
    let field = |name: &str| {
        paragraph
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    let package = field("Package")?;
    let version = field("Version")?;
    let mut in_sha256 = false;
    let mut orig = None;
    for line in paragraph.lines() {
        if !line.starts_with(' ') {
            in_sha256 = line.starts_with("Checksums-Sha256:");
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if in_sha256
            && parts.len() == 3
            && parts[2].contains(".orig.tar.")
            && !parts[2].ends_with(".asc")
        {
            orig = Some((parts[2].to_string(), parts[0].to_string()));
        }
    }
    let (orig_file, orig_sha256) = orig?;
    Some(Candidate {
        upstream: upstream_of(&version),
        package,
        version,
        orig_file,
        orig_sha256,
    })
}

/// Candidates for a version request (`3.13` or `3.13.5`), newest first, adding a `deb-src`
/// entry first if the machine has none.
pub fn candidates(request: &str, log: &Path) -> Result<Vec<Candidate>> {
    let package = format!("python{}", versions::minor_of(request));
    let mut found = showsrc(&package)?;
    if found.is_empty() && !has_deb_src()? {
        add_deb_src(log)?;
        found = showsrc(&package)?;
    }
    let matching: Vec<Candidate> = found
        .into_iter()
        .filter(|c| versions::version_matches(request, &c.upstream))
        .collect();
    if matching.is_empty() {
        bail!(
            "Debian's archive offers no source package for CPython {request} \
             (`apt-cache showsrc {package}` lists none that match); check your deb-src \
             entries (`apt-cache policy`) or use another --source"
        );
    }
    Ok(matching)
}

fn showsrc(package: &str) -> Result<Vec<Candidate>> {
    let out = Command::new("apt-cache")
        .args(["showsrc", package])
        .output()
        .context("cannot run apt-cache (is this a Debian-based machine? use another --source)")?;
    Ok(parse_showsrc(&String::from_utf8_lossy(&out.stdout)))
}

/// Whether any apt source list has a `deb-src` entry.
fn has_deb_src() -> Result<bool> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    Ok(files.iter().any(|f| {
        let is_list = f.extension().is_some_and(|e| e == "list" || e == "sources")
            || f.ends_with("sources.list");
        is_list
            && std::fs::read_to_string(f).is_ok_and(|text| {
                text.lines().map(str::trim).any(|l| {
                    l.starts_with("deb-src ") || (l.starts_with("Types:") && l.contains("deb-src"))
                })
            })
    }))
}

fn add_deb_src(log: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "no deb-src entry in apt's sources, so Debian's CPython sources cannot be listed. \
             As root, run:\n  printf '{}' > {SOURCES_FILE} && apt-get update\nthen retry",
            SOURCES_ENTRY.replace('\n', "\\n")
        );
    }
    std::fs::write(SOURCES_FILE, SOURCES_ENTRY)
        .with_context(|| format!("cannot write {SOURCES_FILE}"))?;
    eprintln!("added a deb-src entry (trixie, forky) at {SOURCES_FILE}; running apt-get update");
    run_logged(Command::new("apt-get").arg("update"), log, "apt-get update")
}

/// Downloads the newest candidate that apt can actually fetch (a mirror may list a version
/// whose files are gone: 404), reusing an earlier download whose checksum still matches.
pub fn download(candidates: &[Candidate], dir: &Path, log: &Path) -> Result<Downloaded> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut failures = Vec::new();
    for candidate in candidates {
        let tarball = dir.join(&candidate.orig_file);
        if tarball.is_file() && fetch::sha256_file(&tarball)? == candidate.orig_sha256 {
            return Ok(Downloaded {
                sha256: candidate.orig_sha256.clone(),
                candidate: candidate.clone(),
                tarball,
                reused: true,
            });
        }
        let spec = format!("{}={}", candidate.package, candidate.version);
        let mut cmd = Command::new("apt-get");
        cmd.args(["source", "--download-only", &spec])
            .current_dir(dir);
        match run_logged(
            &mut cmd,
            log,
            &format!("apt-get source --download-only {spec}"),
        ) {
            Ok(()) if tarball.is_file() => {
                let sha256 = fetch::sha256_file(&tarball)?;
                fetch::check_sha256(&candidate.orig_file, &candidate.orig_sha256, &sha256)?;
                return Ok(Downloaded {
                    candidate: candidate.clone(),
                    tarball,
                    sha256,
                    reused: false,
                });
            }
            Ok(()) => failures.push(format!(
                "{spec}: apt reported success but {} is missing",
                candidate.orig_file
            )),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    bail!(
        "could not download any Debian source package (log: {}):\n  {}",
        log.display(),
        failures.join("\n  ")
    )
}

fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); see {}", log.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWSRC: &str = include_str!("../tests/data/apt-cache-showsrc-python3.13.txt");

    #[test]
    fn parses_real_showsrc_output() {
        let found = parse_showsrc(SHOWSRC);
        assert_eq!(
            found,
            [Candidate {
                package: "python3.13".into(),
                version: "3.13.5-2+deb13u5".into(),
                upstream: "3.13.5".into(),
                orig_file: "python3.13_3.13.5.orig.tar.xz".into(),
                orig_sha256: "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
                    .into(),
            }]
        );
        // Debian's orig tarball is python.org's: the pinned table agrees.
        assert_eq!(
            versions::pinned_sha256("3.13.5"),
            Some(found[0].orig_sha256.as_str())
        );
    }

    #[test]
    fn several_suites_sort_newest_first() {
        let newer = SHOWSRC
            .replace("3.13.5-2+deb13u5", "3.13.15-1")
            .replace("python3.13_3.13.5.orig", "python3.13_3.13.15.orig");
        let both = format!("{SHOWSRC}\n\n{newer}");
        let versions: Vec<String> = parse_showsrc(&both)
            .into_iter()
            .map(|c| c.upstream)
            .collect();
        assert_eq!(versions, ["3.13.15", "3.13.5"]);
    }

    #[test]
    fn upstream_versions_from_debian_versions() {
        assert_eq!(upstream_of("3.13.5-2+deb13u5"), "3.13.5");
        assert_eq!(upstream_of("1:3.14.0~rc1-1"), "3.14.0rc1");
        assert_eq!(upstream_of("3.13.15"), "3.13.15");
    }
}
