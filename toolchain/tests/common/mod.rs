//! Shared fixtures: a loopback HTTP server, fake CPython source trees, cache inspection.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ftreview_toolchain::{BuildRequest, Progress, SourceSpec};

/// Serves `files` (URL path → body) on 127.0.0.1 until the test process ends; anything
/// else is a 404. Returns the base URL.
pub fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or_default();
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_string();
                let mut stream = stream;
                match files.get(&path) {
                    Some(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(body);
                    }
                    None => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            });
        }
    });
    base
}

/// A base URL on which nothing listens.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A directory that looks like a CPython 3.13.5 tree whose `configure` runs `configure_body`.
pub fn fake_source_tree(dir: &Path, configure_body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join("cpython");
    std::fs::create_dir_all(tree.join("Include")).unwrap();
    std::fs::create_dir_all(tree.join("Tools/tsan")).unwrap();
    std::fs::write(
        tree.join("Include/patchlevel.h"),
        "#define PY_VERSION \"3.13.5\"\n",
    )
    .unwrap();
    std::fs::write(tree.join("Tools/tsan/suppressions_free_threading.txt"), "").unwrap();
    let configure = tree.join("configure");
    std::fs::write(&configure, format!("#!/bin/sh\n{configure_body}\n")).unwrap();
    std::fs::set_permissions(&configure, std::fs::Permissions::from_mode(0o755)).unwrap();
    tree
}

pub fn request(cache: &Path, source: SourceSpec, version: Option<&str>) -> BuildRequest {
    let mut request = BuildRequest::new(cache.to_path_buf());
    request.source = source;
    request.version = version.map(str::to_string);
    request
}

/// Runs a request that must fail; returns the full error chain.
pub fn build_error(request: &BuildRequest) -> String {
    match ftreview_toolchain::ensure_interpreter(request, &Progress::hidden()) {
        Ok(i) => panic!("expected a failure, got {}", i.python.display()),
        Err(e) => format!("{e:#}"),
    }
}

/// Nothing published and no build directory left behind.
pub fn assert_nothing_published(cache: &Path) {
    assert!(ftreview_toolchain::list_cached(cache).unwrap().is_empty());
    let entries = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        entries(cache.join("pythons")),
        Vec::<String>::new(),
        "published entries"
    );
    assert_eq!(
        entries(cache.join("work")),
        Vec::<String>::new(),
        "leftover work dirs"
    );
}

/// A real CPython release tarball on this machine, for tests that unpack one: the
/// `FTREVIEW_TEST_CPYTHON_TARBALL` file, the Debian download of the CI build in the default
/// cache, or the one in /tmp/pysrc.
pub fn real_cpython_tarball() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FTREVIEW_TEST_CPYTHON_TARBALL") {
        return Some(PathBuf::from(path));
    }
    let dirs = [
        ftreview_toolchain::default_cache_dir().join("downloads/debian"),
        PathBuf::from("/tmp/pysrc"),
    ];
    dirs.iter().find_map(|dir| {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(".orig.tar.xz"))
    })
}

/// A `.tar.gz` with raw header paths, which a well-behaved tar writer would refuse to write.
pub fn write_raw_tar_gz(dest: &Path, files: &[(&str, &str)]) {
    let gz =
        flate2::write::GzEncoder::new(std::fs::File::create(dest).unwrap(), Default::default());
    let mut builder = tar::Builder::new(gz);
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o755);
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, contents.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}
