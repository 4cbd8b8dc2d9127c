//! Unpacking source tarballs (`.tar.xz`, `.tar.gz`, `.tar`, told apart by their magic bytes),
//! refusing entries that would land outside the destination.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Unpacks `tarball` into `dest` and returns the single top-level directory (CPython
/// tarballs hold one, `Python-X.Y.Z/`).
pub fn unpack(tarball: &Path, dest: &Path) -> Result<PathBuf> {
    let what = || format!("corrupt or unreadable tarball {}", tarball.display());
    let mut archive = tar::Archive::new(decompressor(tarball)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut tops = std::collections::BTreeSet::new();
    for entry in archive.entries().with_context(what)? {
        let mut entry = entry.with_context(what)?;
        let path = entry.path().with_context(what)?.into_owned();
        check_contained(&path).with_context(|| escape_message(tarball, &path))?;
        if let Some(link) = entry.link_name().with_context(what)? {
            let base = if entry.header().entry_type().is_hard_link() {
                PathBuf::new()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            check_contained(&base.join(&link)).with_context(|| escape_message(tarball, &path))?;
        }
        if let Some(Component::Normal(top)) = path.components().next() {
            tops.insert(top.to_owned());
        }
        entry.unpack_in(dest).with_context(what)?;
    }
    match tops.len() {
        1 => Ok(dest.join(tops.into_iter().next().expect("one element"))),
        0 => bail!("{} is empty", tarball.display()),
        _ => bail!(
            "{} has {} top-level entries; expected one source directory like Python-3.13.5/",
            tarball.display(),
            tops.len()
        ),
    }
}

fn escape_message(tarball: &Path, entry: &Path) -> String {
    format!(
        "refusing to unpack {}: entry `{}` points outside the archive's root",
        tarball.display(),
        entry.display()
    )
}

/// A relative path that never climbs above its starting point.
fn check_contained(path: &Path) -> Result<()> {
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir => bail!("`..` leaves the archive root"),
            Component::RootDir | Component::Prefix(_) => bail!("absolute path"),
        }
    }
    Ok(())
}

fn decompressor(tarball: &Path) -> Result<Box<dyn Read>> {
    let mut file =
        File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let mut magic = [0u8; 6];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    let file = BufReader::new(file);
    Ok(match &magic[..n] {
        [0xFD, b'7', b'z', b'X', b'Z', 0x00] => Box::new(liblzma::read::XzDecoder::new(file)),
        [0x1F, 0x8B, ..] => Box::new(flate2::read::GzDecoder::new(file)),
        _ if is_plain_tar(tarball)? => Box::new(file),
        _ => bail!(
            "{} is not a tarball (.tar.xz, .tar.gz or .tar)",
            tarball.display()
        ),
    })
}

/// A plain tar has `ustar` at offset 257.
fn is_plain_tar(path: &Path) -> Result<bool> {
    let mut header = [0u8; 262];
    let mut file = File::open(path)?;
    Ok(file.read_exact(&mut header).is_ok() && &header[257..262] == b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_may_not_climb_out_or_be_absolute() {
        check_contained(Path::new("Python-3.13.5/Lib/os.py")).unwrap();
        check_contained(Path::new("Python-3.13.5/Lib/../Include/Python.h")).unwrap();
        check_contained(Path::new("./a")).unwrap();
        assert!(check_contained(Path::new("Python-3.13.5/../../evil")).is_err());
        assert!(check_contained(Path::new("../evil")).is_err());
        assert!(check_contained(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn unpacks_a_single_root_tarball_and_rejects_non_tarballs() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("src.tar.gz");
        let gz = flate2::write::GzEncoder::new(File::create(&tarball).unwrap(), Default::default());
        let mut builder = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(7);
        header.set_mode(0o755);
        builder
            .append_data(&mut header, "Python-9.9.9/configure", &b"exit 0\n"[..])
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let root = unpack(&tarball, &dir.path().join("out")).unwrap();
        assert!(root.ends_with("Python-9.9.9"));
        assert!(root.join("configure").is_file());

        let html = dir.path().join("page.tar.xz");
        std::fs::write(&html, "<html>not found</html>").unwrap();
        let err = format!("{:#}", unpack(&html, &dir.path().join("o2")).unwrap_err());
        assert!(err.contains("is not a tarball"), "{err}");
    }
}
