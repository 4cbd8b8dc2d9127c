//! Unpacks an sdist safely: no entry may land outside the destination (absolute paths, `..`,
//! links pointing out of the tree are refused), so a hostile archive cannot write elsewhere.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};

/// Unpacks `archive` into `dest` and returns the source root: the single top-level directory
/// sdists carry, or `dest` itself when there is none.
pub fn unpack_archive(archive: &Path, dest: &Path) -> anyhow::Result<PathBuf> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let reader: Box<dyn Read> = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".tar.xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else if name.ends_with(".tar") {
        Box::new(file)
    } else {
        bail!("{name}: unsupported archive format (ftreview unpacks .tar.gz, .tgz, .tar.xz and .tar; unpack it yourself and pass the directory)");
    };
    fs::create_dir_all(dest)?;
    unpack_tar(reader, dest).with_context(|| format!("cannot unpack {}", archive.display()))?;
    source_root(dest)
}

fn unpack_tar(reader: impl Read, dest: &Path) -> anyhow::Result<()> {
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(false);
    tar.set_overwrite(true);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        check_inside(&path)?;
        if let Some(target) = entry.link_name()? {
            let resolved = path.parent().unwrap_or(Path::new("")).join(&target);
            if target.is_absolute() || escapes(&resolved) {
                bail!(
                    "refusing link {} -> {}: it points outside the archive",
                    path.display(),
                    target.display()
                );
            }
        }
        entry.unpack_in(dest)?;
    }
    Ok(())
}

fn check_inside(path: &Path) -> anyhow::Result<()> {
    if path.is_absolute() || escapes(path) {
        bail!(
            "refusing entry {}: it would be written outside the destination",
            path.display()
        );
    }
    Ok(())
}

/// Whether a relative path climbs above its starting directory.
fn escapes(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::RootDir | Component::Prefix(_) => return true,
            Component::CurDir => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

fn source_root(dest: &Path) -> anyhow::Result<PathBuf> {
    let entries: Vec<PathBuf> = fs::read_dir(dest)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    match entries.as_slice() {
        [only] if only.is_dir() => Ok(only.clone()),
        _ => Ok(dest.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(path: &Path, entries: &[(&str, &[u8])]) {
        let file = fs::File::create(path).unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // Written raw so hostile names are not normalized away by the builder.
            let bytes = header.as_old_mut().name.as_mut();
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn unpacks_an_sdist_and_returns_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("pkg-1.0.tar.gz");
        tar_gz(
            &archive,
            &[
                ("pkg-1.0/setup.py", b"print()"),
                ("pkg-1.0/pkg/m.c", b"int x;"),
            ],
        );
        let root = unpack_archive(&archive, &dir.path().join("out")).unwrap();
        assert_eq!(root, dir.path().join("out/pkg-1.0"));
        assert_eq!(fs::read_to_string(root.join("pkg/m.c")).unwrap(), "int x;");
    }

    #[test]
    fn refuses_entries_that_escape() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("evil-1.0.tar.gz");
        tar_gz(
            &archive,
            &[
                ("evil-1.0/ok.txt", b"ok"),
                ("evil-1.0/../../escaped.txt", b"gotcha"),
            ],
        );
        let err = format!(
            "{:#}",
            unpack_archive(&archive, &dir.path().join("out/deeper")).unwrap_err()
        );
        assert!(err.contains("outside the destination"), "{err}");
        assert!(!dir.path().join("escaped.txt").exists());
        assert!(!dir.path().join("out/escaped.txt").exists());
    }

    #[test]
    fn refuses_unknown_formats_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("pkg-1.0.zip");
        fs::write(&archive, b"PK").unwrap();
        let err = unpack_archive(&archive, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported archive format"), "{err}");
    }

    #[test]
    fn detects_climbing_paths() {
        assert!(escapes(Path::new("a/../../b")));
        assert!(!escapes(Path::new("a/../b")));
        assert!(escapes(Path::new("/etc/passwd")));
    }
}
