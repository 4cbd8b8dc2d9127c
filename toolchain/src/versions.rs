//! CPython versions: the pinned python.org checksum table and version requests
//! (`3.13` means the newest known 3.13.x).

use std::cmp::Ordering;

use anyhow::{bail, Result};

const TABLE: &str = include_str!("../data/cpython-sha256.txt");

/// One pinned python.org release tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRelease {
    pub version: &'static str,
    pub sha256: &'static str,
    /// How the checksum was verified.
    pub provenance: &'static str,
}

/// Every pinned release, newest first.
pub fn known_releases() -> Vec<KnownRelease> {
    let mut releases: Vec<KnownRelease> = TABLE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (version, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim_start();
            let (sha256, provenance) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            KnownRelease {
                version,
                sha256,
                provenance: provenance.trim(),
            }
        })
        .collect();
    releases.sort_by(|a, b| compare_versions(b.version, a.version));
    releases
}

/// The pinned checksum of python.org's tarball for exactly `version`.
pub fn pinned_sha256(version: &str) -> Option<&'static str> {
    known_releases()
        .into_iter()
        .find(|r| r.version == version)
        .map(|r| r.sha256)
}

/// Resolves `3.13` / `3.13.5` / nothing to a pinned release (newest matching).
pub fn resolve_known(request: Option<&str>) -> Result<KnownRelease> {
    let releases = known_releases();
    let found = releases
        .iter()
        .find(|r| request.is_none_or(|req| version_matches(req, r.version)));
    match found {
        Some(release) => Ok(release.clone()),
        None => {
            let known: Vec<&str> = releases.iter().map(|r| r.version).collect();
            bail!(
                "unknown CPython version `{}`: no pinned python.org checksum for it \
                 (known: {}). Use `--source debian`, a local tarball or source directory, \
                 or a URL with `--sha256`",
                request.unwrap_or("?"),
                known.join(", ")
            )
        }
    }
}

/// Checks that a request is a version at all (`3.13`, `3.13.5`, `3.14.0rc1`).
pub fn validate_request(request: &str) -> Result<()> {
    let mut parts = request.split('.');
    let major_minor_ok = parts.next().is_some_and(is_number) && parts.next().is_some_and(is_number);
    let patch_ok = parts
        .next()
        .is_none_or(|p| p.starts_with(|c: char| c.is_ascii_digit()));
    if !major_minor_ok || !patch_ok || parts.next().is_some() {
        bail!("`{request}` is not a CPython version (expected e.g. 3.13 or 3.13.5)");
    }
    Ok(())
}

/// Free-threaded builds exist from CPython 3.13 on.
pub fn ensure_free_threading(version: &str) -> Result<()> {
    if compare_versions(&minor_of(version), "3.13") == Ordering::Less {
        bail!("CPython {version} has no free-threaded build; use 3.13 or newer");
    }
    Ok(())
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `3.13` matches `3.13.5`; `3.13.5` matches only itself; `3.1` does not match `3.13.0`.
pub fn version_matches(request: &str, version: &str) -> bool {
    let req: Vec<&str> = request.split('.').collect();
    let have: Vec<&str> = version.split('.').collect();
    req.len() <= have.len() && req.iter().zip(&have).all(|(a, b)| a == b)
}

/// `major.minor` of a full version.
pub fn minor_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Orders versions numerically component by component (`3.13.10` > `3.13.9`), with a
/// pre-release (`3.14.0rc1`) before its final release.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let key = |v: &str| -> Vec<(u64, u8, String)> {
        v.split('.')
            .map(|part| {
                let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                let suffix = part[digits.len()..].to_string();
                // A bare number sorts after the same number with a pre-release suffix.
                let final_rank = u8::from(suffix.is_empty());
                (digits.parse().unwrap_or(0), final_rank, suffix)
            })
            .collect()
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_is_well_formed() {
        let releases = known_releases();
        assert!(!releases.is_empty());
        for r in &releases {
            validate_request(r.version).unwrap();
            assert_eq!(r.sha256.len(), 64, "{r:?}");
            assert!(r.sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{r:?}");
            assert!(!r.provenance.is_empty(), "{r:?}");
        }
        assert_eq!(
            pinned_sha256("3.13.5"),
            Some("93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640")
        );
    }

    #[test]
    fn minor_request_resolves_to_newest_known_patch() {
        let newest_313 = known_releases()
            .into_iter()
            .find(|r| r.version.starts_with("3.13."))
            .unwrap();
        assert_eq!(resolve_known(Some("3.13")).unwrap(), newest_313);
        assert_eq!(resolve_known(Some("3.13.5")).unwrap().version, "3.13.5");
    }

    #[test]
    fn unknown_version_names_the_known_ones() {
        let err = resolve_known(Some("3.9")).unwrap_err().to_string();
        assert!(err.contains("unknown CPython version `3.9`"), "{err}");
        assert!(err.contains("3.13.5"), "{err}");
    }

    #[test]
    fn version_matching_is_component_wise() {
        assert!(version_matches("3.13", "3.13.5"));
        assert!(version_matches("3.13.5", "3.13.5"));
        assert!(!version_matches("3.1", "3.13.0"));
        assert!(!version_matches("3.13.5", "3.13"));
    }

    #[test]
    fn versions_order_numerically_with_prereleases_first() {
        assert_eq!(compare_versions("3.13.10", "3.13.9"), Ordering::Greater);
        assert_eq!(compare_versions("3.14.0rc1", "3.14.0"), Ordering::Less);
        assert_eq!(compare_versions("3.14.0", "3.13.15"), Ordering::Greater);
    }

    #[test]
    fn rejects_things_that_are_not_versions() {
        for bad in ["", "3", "three.13", "3.13.5.1", "3.13.x", "latest"] {
            assert!(validate_request(bad).is_err(), "{bad}");
        }
        for good in ["3.13", "3.13.5", "3.14.0rc1"] {
            validate_request(good).unwrap();
        }
    }
}
