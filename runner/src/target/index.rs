//! A package index client for the one thing ftreview needs: find a project's sdist (PEP 691 JSON,
//! with the PEP 503 HTML form as a fallback for indexes that only serve HTML), download it and
//! check its SHA-256. The index is pip's: `PIP_INDEX_URL`, else `pip config get global.index-url`,
//! else PyPI.

use std::cmp::Ordering;
use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::target::strip_archive_suffix;

const PYPI: &str = "https://pypi.org/simple/";
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, text/html;q=0.1";

/// One file of a release on the index (an sdist, or a wheel ftreview needs itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    pub url: String,
    pub version: String,
    pub sha256: String,
}

/// A simple-API index.
pub struct Index {
    base: String,
    agent: ureq::Agent,
}

#[derive(Debug, Deserialize)]
struct ProjectPage {
    files: Vec<FileEntry>,
}

#[derive(Debug, Deserialize)]
struct FileEntry {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
    #[serde(default)]
    yanked: serde_json::Value,
}

impl Index {
    /// The index pip would use.
    pub fn from_pip_config() -> Index {
        Index::new(&pip_index_url())
    }

    pub fn new(base: &str) -> Index {
        let base = if base.ends_with('/') {
            base.to_string()
        } else {
            format!("{base}/")
        };
        Index {
            base,
            agent: agent(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The sdist of `version` (or of the newest final release that has one).
    pub fn find_sdist(&self, name: &str, version: Option<&str>) -> anyhow::Result<IndexFile> {
        let files = self.project_files(name)?;
        let sdists: Vec<(IndexFile, bool)> = files
            .into_iter()
            .filter_map(|f| sdist_of(name, f))
            .collect();
        choose_sdist(name, version, sdists, &self.base)
    }

    /// The file called `filename` among `project`'s files.
    pub fn find_file(&self, project: &str, filename: &str) -> anyhow::Result<IndexFile> {
        let file = self
            .project_files(project)?
            .into_iter()
            .find(|f| f.filename == filename)
            .with_context(|| format!("{filename} is not on the index {}", self.base))?;
        Ok(IndexFile {
            sha256: file.hashes.get("sha256").cloned().unwrap_or_default(),
            version: String::new(),
            filename: file.filename,
            url: file.url,
        })
    }

    /// Downloads the file to `dest` and checks its SHA-256 against the index's.
    pub fn download(&self, sdist: &IndexFile, dest: &Path) -> anyhow::Result<()> {
        let mut response = self
            .agent
            .get(&sdist.url)
            .call()
            .with_context(|| format!("cannot download {}", sdist.url))?;
        let mut reader = response.body_mut().as_reader();
        let mut file =
            fs::File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf)
                .with_context(|| format!("download of {} broke off", sdist.url))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        let got = hex::encode(hasher.finalize());
        if !sdist.sha256.is_empty() && got != sdist.sha256 {
            bail!(
                "{}: SHA-256 mismatch: the index says {}, the download is {got} (kept at {})",
                sdist.filename,
                sdist.sha256,
                dest.display()
            );
        }
        Ok(())
    }

    fn project_files(&self, name: &str) -> anyhow::Result<Vec<FileEntry>> {
        let url = format!("{}{}/", self.base, normalize(name));
        let mut response = match self.agent.get(&url).header("Accept", ACCEPT).call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) => bail!("unknown package `{name}`: {url} does not exist on the index (check the name; the index is {})", self.base),
            Err(err) => return Err(err).with_context(|| format!("cannot reach the package index at {url}")),
        };
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()?;
        if json {
            let page: ProjectPage = serde_json::from_str(&body)
                .with_context(|| format!("{url} is not a PEP 691 project page"))?;
            Ok(page
                .files
                .into_iter()
                .map(|f| FileEntry {
                    url: join_url(&url, &f.url),
                    ..f
                })
                .collect())
        } else {
            Ok(html_files(&url, &body))
        }
    }
}

fn agent() -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    // Use the system CA bundle when there is one (corporate proxies add their CA there).
    let bundle = ["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(std::path::PathBuf::from)
        .chain([std::path::PathBuf::from(
            "/etc/ssl/certs/ca-certificates.crt",
        )])
        .find(|p| p.is_file());
    if let Some(pem) = bundle.and_then(|p| fs::read(p).ok()) {
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if !certs.is_empty() {
            tls = tls.root_certs(ureq::tls::RootCerts::from(certs));
        }
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .user_agent(concat!("ftreview/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// pip's index: `PIP_INDEX_URL`, then pip's configuration, then PyPI.
fn pip_index_url() -> String {
    if let Some(url) = std::env::var("PIP_INDEX_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return url;
    }
    let configured = ["python3", "python"].iter().find_map(|py| {
        let out = std::process::Command::new(py)
            .args(["-m", "pip", "config", "get", "global.index-url"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !url.is_empty()).then_some(url)
    });
    configured.unwrap_or_else(|| PYPI.to_string())
}

/// PEP 503 name normalization.
pub fn normalize(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let re = Regex::new(r"[-_.]+").expect("static regex");
    re.replace_all(&lower, "-").into_owned()
}

fn join_url(page: &str, href: &str) -> String {
    if href.contains("://") {
        return href.to_string();
    }
    let scheme_end = page.find("://").map(|i| i + 3).unwrap_or(0);
    if let Some(rest) = href.strip_prefix('/') {
        let host_end = page[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(page.len());
        return format!("{}/{rest}", &page[..host_end]);
    }
    let dir_end = page.rfind('/').map(|i| i + 1).unwrap_or(page.len());
    format!("{}{href}", &page[..dir_end])
}

/// Files of a PEP 503 HTML page: `<a href="URL#sha256=HEX" data-yanked>filename</a>`.
fn html_files(page: &str, body: &str) -> Vec<FileEntry> {
    let re = Regex::new(r#"(?is)<a\s+([^>]*)>([^<]+)</a>"#).expect("static regex");
    let href = Regex::new(r#"href\s*=\s*"([^"]+)""#).expect("static regex");
    re.captures_iter(body)
        .filter_map(|c| {
            let attrs = c.get(1)?.as_str();
            let raw = href.captures(attrs)?.get(1)?.as_str().replace("&amp;", "&");
            let (url, fragment) = raw.split_once('#').unwrap_or((&raw, ""));
            let mut hashes = std::collections::HashMap::new();
            if let Some(hex) = fragment.strip_prefix("sha256=") {
                hashes.insert("sha256".to_string(), hex.to_string());
            }
            let yanked = serde_json::Value::Bool(attrs.contains("data-yanked"));
            Some(FileEntry {
                filename: c.get(2)?.as_str().trim().to_string(),
                url: join_url(page, url),
                hashes,
                yanked,
            })
        })
        .collect()
}

/// An sdist entry and whether it is yanked, or None for wheels and other files.
fn sdist_of(name: &str, file: FileEntry) -> Option<(IndexFile, bool)> {
    let stem = strip_archive_suffix(&file.filename);
    if stem == file.filename || file.filename.ends_with(".whl") {
        return None;
    }
    let (project, version) = stem.rsplit_once('-')?;
    if normalize(project) != normalize(name) {
        return None;
    }
    let version = version.to_string();
    let yanked = !matches!(
        file.yanked,
        serde_json::Value::Bool(false) | serde_json::Value::Null
    );
    let sha256 = file.hashes.get("sha256").cloned().unwrap_or_default();
    Some((
        IndexFile {
            filename: file.filename,
            url: file.url,
            version,
            sha256,
        },
        yanked,
    ))
}

fn choose_sdist(
    name: &str,
    version: Option<&str>,
    mut sdists: Vec<(IndexFile, bool)>,
    index: &str,
) -> anyhow::Result<IndexFile> {
    // Prefer .tar.gz over other archive forms of the same version.
    sdists.sort_by_key(|(s, _)| !s.filename.ends_with(".tar.gz"));
    match version {
        Some(version) => sdists
            .into_iter()
            .find(|(s, _)| s.version == version)
            .map(|(s, _)| s)
            .with_context(|| format!("{name}=={version} has no source distribution on {index} (only wheels, or no such version): ftreview builds from source, so pass a source directory, an sdist file or git+URL@rev instead")),
        None => sdists
            .into_iter()
            .filter(|(s, yanked)| !yanked && is_final_release(&s.version))
            .max_by(|(a, _), (b, _)| compare_versions(&a.version, &b.version))
            .map(|(s, _)| s)
            .with_context(|| format!("{name} has no source distribution of a final release on {index}: pass a version, a source directory, an sdist file or git+URL@rev")),
    }
}

fn is_final_release(version: &str) -> bool {
    version
        .split('.')
        .all(|part| part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty())
}

/// Orders final releases by their numeric parts (`6.10.0` > `6.9.2`).
fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| {
        v.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let (mut a, mut b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    a.resize(len, 0);
    b.resize(len, 0);
    a.cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(filename: &str, yanked: bool) -> FileEntry {
        FileEntry {
            filename: filename.into(),
            url: format!("https://files/{filename}"),
            hashes: Default::default(),
            yanked: serde_json::Value::Bool(yanked),
        }
    }

    fn sdists(files: &[(&str, bool)]) -> Vec<(IndexFile, bool)> {
        files
            .iter()
            .filter_map(|(f, y)| sdist_of("multi-dict", entry(f, *y)))
            .collect()
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Multi_Dict.ext"), "multi-dict-ext");
    }

    #[test]
    fn picks_the_newest_final_unyanked_sdist() {
        let files = sdists(&[
            ("multi_dict-6.9.2.tar.gz", false),
            ("multi_dict-6.10.0.tar.gz", false),
            ("multi_dict-6.11.0.tar.gz", true),
            ("multi_dict-7.0.0rc1.tar.gz", false),
            ("multi_dict-6.12.0-cp313-cp313t-linux_x86_64.whl", false),
        ]);
        assert_eq!(
            choose_sdist("multi-dict", None, files, "idx")
                .unwrap()
                .version,
            "6.10.0"
        );
    }

    #[test]
    fn a_pinned_version_without_sdist_says_so() {
        let files = sdists(&[("multi_dict-6.9.2.tar.gz", false)]);
        let err = choose_sdist("multi-dict", Some("6.7.1"), files, "idx")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("multi-dict==6.7.1 has no source distribution"),
            "{err}"
        );
    }

    #[test]
    fn prefers_tar_gz_for_the_same_version() {
        let files = sdists(&[
            ("multi_dict-1.0.zip", false),
            ("multi_dict-1.0.tar.gz", false),
        ]);
        assert_eq!(
            choose_sdist("multi-dict", Some("1.0"), files, "idx")
                .unwrap()
                .filename,
            "multi_dict-1.0.tar.gz"
        );
    }

    #[test]
    fn resolves_relative_urls() {
        assert_eq!(
            join_url("http://h:1/simple/p/", "../../files/p.tar.gz"),
            "http://h:1/simple/p/../../files/p.tar.gz"
        );
        assert_eq!(
            join_url("http://h:1/simple/p/", "/files/p.tar.gz"),
            "http://h:1/files/p.tar.gz"
        );
        assert_eq!(
            join_url("http://h:1/simple/p/", "https://x/y"),
            "https://x/y"
        );
    }

    #[test]
    fn reads_pep_503_html_pages() {
        let body = r#"<html><body><a href="/f/pkg-1.0.tar.gz#sha256=abc" data-requires-python="&gt;=3.8">pkg-1.0.tar.gz</a>
            <a href="pkg-0.9.tar.gz" data-yanked="">pkg-0.9.tar.gz</a></body></html>"#;
        let files = html_files("http://h/simple/pkg/", body);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].url, "http://h/f/pkg-1.0.tar.gz");
        assert_eq!(files[0].hashes["sha256"], "abc");
        assert_eq!(files[1].yanked, serde_json::Value::Bool(true));
    }
}
