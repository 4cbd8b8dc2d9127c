//! Getting source tarballs over HTTP(S) and checking their SHA-256.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// python.org's release directory: the given mirror, else `$FTREVIEW_PYTHON_ORG_URL`, else
/// python.org itself.
pub fn python_org_base(mirror: Option<&str>) -> String {
    mirror
        .map(str::to_string)
        .or_else(|| std::env::var("FTREVIEW_PYTHON_ORG_URL").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "https://www.python.org/ftp/python".into())
        .trim_end_matches('/')
        .to_string()
}

/// `<base>/3.14.0/Python-3.14.0rc1.tar.xz`: pre-releases live in their final release's directory.
pub fn python_org_url(base: &str, version: &str) -> String {
    let release = version
        .split(|c: char| c.is_ascii_alphabetic())
        .next()
        .unwrap_or(version);
    format!("{base}/{release}/Python-{version}.tar.xz")
}

/// Why a download failed: the auto source falls back to Debian only when the server could
/// not be reached at all.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("download of {url} failed: {reason}")]
    Broken { url: String, reason: String },
}

/// Downloads `url` to `dest` (via `dest.part`, renamed on success) and returns its SHA-256.
pub fn download(url: &str, dest: &Path) -> Result<String, FetchError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| classify(url, e))?;
    let part = dest.with_extension("part");
    let broken = |reason: String| FetchError::Broken {
        url: url.to_string(),
        reason,
    };
    let result = (|| -> io::Result<String> {
        let mut out = File::create(&part)?;
        let sha = copy_hashing(&mut response.into_body().into_reader(), &mut out)?;
        out.sync_all()?;
        fs::rename(&part, dest)?;
        Ok(sha)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&part);
        broken(e.to_string())
    })
}

fn classify(url: &str, err: ureq::Error) -> FetchError {
    let url = url.to_string();
    match err {
        ureq::Error::StatusCode(status) => FetchError::Status { url, status },
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed => FetchError::Unreachable {
            url,
            reason: err.to_string(),
        },
        other => FetchError::Broken {
            url,
            reason: other.to_string(),
        },
    }
}

fn copy_hashing(reader: &mut impl Read, out: &mut impl Write) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
}

/// SHA-256 of some bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    copy_hashing(&mut file, &mut io::sink())
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Fails unless `actual` equals `expected` (case-insensitive hex).
pub fn check_sha256(what: &str, expected: &str, actual: &str) -> Result<()> {
    if !expected.eq_ignore_ascii_case(actual) {
        bail!(
            "checksum mismatch for {what}: expected sha256 {expected}, got {actual}; \
             refusing to build it (nothing was installed). A truncated download, a wrong \
             --sha256, or a tampered file"
        );
    }
    Ok(())
}

/// The file name a URL's last path segment suggests (query stripped), for the download cache.
pub fn file_name_of(url: &str) -> PathBuf {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("source.tar");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_org_urls_follow_the_ftp_layout() {
        assert_eq!(
            python_org_url("b", "3.13.5"),
            "b/3.13.5/Python-3.13.5.tar.xz"
        );
        assert_eq!(
            python_org_url("b", "3.14.0rc1"),
            "b/3.14.0/Python-3.14.0rc1.tar.xz"
        );
        assert_eq!(python_org_base(Some("http://m/ftp/")), "http://m/ftp");
    }

    #[test]
    fn checksum_mismatch_says_both_values() {
        let err = check_sha256("x.tar.xz", "aa", "bb")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected sha256 aa, got bb"), "{err}");
        check_sha256("x", "AB", "ab").unwrap();
    }

    #[test]
    fn sha256_of_a_known_string() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc");
        fs::write(&file, "abc").unwrap();
        assert_eq!(
            sha256_file(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            file_name_of("http://h/a/Python-3.13.5.tar.xz?x=1"),
            PathBuf::from("Python-3.13.5.tar.xz")
        );
        assert_eq!(file_name_of("http://h/"), PathBuf::from("source.tar"));
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let dir = tempfile::tempdir().unwrap();
        let err = download(
            &format!("http://127.0.0.1:{port}/x.tar.xz"),
            &dir.path().join("x"),
        )
        .unwrap_err();
        assert!(matches!(err, FetchError::Unreachable { .. }), "{err}");
    }
}
