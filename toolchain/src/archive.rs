//! Unpacking source archives (`.tar.xz`, `.tar.gz`, `.tar`, `.zip`, told apart by their magic
//! bytes) without letting any entry land outside the destination: absolute paths, `..` and
//! links pointing out of the tree are refused, so a hostile archive cannot write elsewhere.
//! CPython's tarballs and extensions' sdists both come through here.

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Unpacks `archive` into `dest` (created) and returns the source root: the single top-level
/// directory archives of source trees carry (`Python-3.13.5/`, `pkg-1.0/`), or `dest` itself
/// when there is none.
pub fn unpack(archive: &Path, dest: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let unpacked = match format_of(archive)? {
        Format::Zip => unpack_zip(archive, dest),
        Format::Tar(reader) => unpack_tar(reader, dest),
    };
    unpacked.with_context(|| format!("cannot unpack {}", archive.display()))?;
    source_root(archive, dest)
}

enum Format {
    Tar(Box<dyn Read>),
    Zip,
}

fn format_of(archive: &Path) -> Result<Format> {
    let mut file =
        File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut magic = [0u8; 6];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    let file = BufReader::new(file);
    Ok(match &magic[..n] {
        [0xFD, b'7', b'z', b'X', b'Z', 0x00] => {
            Format::Tar(Box::new(liblzma::read::XzDecoder::new(file)))
        }
        [0x1F, 0x8B, ..] => Format::Tar(Box::new(flate2::read::GzDecoder::new(file))),
        [b'P', b'K', 0x03, 0x04, ..] => Format::Zip,
        _ if is_plain_tar(archive)? => Format::Tar(Box::new(file)),
        _ => bail!(
            "{} is not an archive ftreview can unpack (.tar.xz, .tar.gz, .tar or .zip); unpack it \
             yourself and pass the directory",
            archive.display()
        ),
    })
}

/// A plain tar has `ustar` at offset 257.
fn is_plain_tar(path: &Path) -> Result<bool> {
    let mut header = [0u8; 262];
    let mut file = File::open(path)?;
    Ok(file.read_exact(&mut header).is_ok() && &header[257..262] == b"ustar")
}

const CORRUPT_TAR: &str = "corrupt or unreadable tarball (a truncated or damaged download?)";

fn unpack_tar(reader: impl Read, dest: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    for entry in tar.entries().context(CORRUPT_TAR)? {
        let mut entry = entry.context(CORRUPT_TAR)?;
        let path = entry.path()?.into_owned();
        check_contained(&path)?;
        if let Some(link) = entry.link_name()? {
            let base = if entry.header().entry_type().is_hard_link() {
                PathBuf::new()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            check_contained(&base.join(&link)).with_context(|| {
                format!("refusing link {} -> {}", path.display(), link.display())
            })?;
        }
        entry.unpack_in(dest).context(CORRUPT_TAR)?;
    }
    Ok(())
}

fn unpack_zip(archive: &Path, dest: &Path) -> Result<()> {
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(archive)?))?;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let name = PathBuf::from(entry.name()?.as_ref());
        check_contained(&name)?;
        let target = dest.join(&name);
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if entry.is_symlink() {
            bail!("refusing symlink {} in a zip archive", name.display());
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = File::create(&target)?;
        std::io::copy(&mut entry, &mut out)?;
        #[cfg(unix)]
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode & 0o777))?;
        }
    }
    Ok(())
}

/// A relative path that never climbs above its starting point.
fn check_contained(path: &Path) -> Result<()> {
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "refusing entry {}: it points outside the archive's root",
                path.display()
            ),
        }
    }
    Ok(())
}

fn source_root(archive: &Path, dest: &Path) -> Result<PathBuf> {
    let entries: Vec<PathBuf> = fs::read_dir(dest)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    match entries.as_slice() {
        [] => bail!("{} is empty", archive.display()),
        [only] if only.is_dir() => Ok(only.clone()),
        _ => Ok(dest.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn tar_gz(path: &Path, entries: &[(&str, &[u8])]) {
        let gz = flate2::write::GzEncoder::new(File::create(path).unwrap(), Default::default());
        let mut builder = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            // Written raw so hostile names are not normalized away by the builder.
            let bytes = header.as_old_mut().name.as_mut();
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }

    fn zip_file(path: &Path, entries: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
    }

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
    fn tarballs_and_zips_unpack_to_their_single_root() {
        let dir = tempfile::tempdir().unwrap();
        let entries: &[(&str, &[u8])] = &[
            ("pkg-1.0/setup.py", b"print()"),
            ("pkg-1.0/pkg/m.c", b"int x;"),
        ];
        let tarball = dir.path().join("pkg-1.0.tar.gz");
        tar_gz(&tarball, entries);
        let zip = dir.path().join("pkg-1.0.zip");
        zip_file(&zip, entries);
        for (archive, out) in [(&tarball, "t"), (&zip, "z")] {
            let root = unpack(archive, &dir.path().join(out)).unwrap();
            assert_eq!(root, dir.path().join(out).join("pkg-1.0"));
            assert_eq!(fs::read_to_string(root.join("pkg/m.c")).unwrap(), "int x;");
        }
    }

    #[test]
    fn entries_that_escape_are_refused_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let entries: &[(&str, &[u8])] = &[
            ("evil-1.0/ok.txt", b"ok"),
            ("evil-1.0/../../escaped.txt", b"gotcha"),
        ];
        let tarball = dir.path().join("evil.tar.gz");
        tar_gz(&tarball, entries);
        let zip = dir.path().join("evil.zip");
        zip_file(&zip, entries);
        for archive in [&tarball, &zip] {
            let err = format!(
                "{:#}",
                unpack(archive, &dir.path().join("out/deeper")).unwrap_err()
            );
            assert!(err.contains("outside the archive's root"), "{err}");
            assert!(!dir.path().join("escaped.txt").exists());
            assert!(!dir.path().join("out/escaped.txt").exists());
        }
    }

    #[test]
    fn what_is_no_archive_gets_advice() {
        let dir = tempfile::tempdir().unwrap();
        let html = dir.path().join("page.tar.xz");
        fs::write(&html, "<html>not found</html>").unwrap();
        let err = format!("{:#}", unpack(&html, &dir.path().join("o")).unwrap_err());
        assert!(err.contains("not an archive ftreview can unpack"), "{err}");
    }
}
