//! Write rules (B.4.2): a destination is written only when its bytes differ,
//! atomically — a temp file in the destination's directory (so `rename`
//! never crosses filesystems), fsync, mode, optional `.bak`, rename.
//!
//! Writing is split in two so the runner can validate the staged file with a
//! `check_command` before it replaces the destination: [`stage`] writes the
//! temp file, [`Staged::commit`] installs it, dropping a [`Staged`] removes it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rand::Rng;

/// Mode of a new file when neither `perms` nor an existing file says.
pub const DEFAULT_MODE: u32 = 0o644;
/// Mode of created parent directories.
const DIR_MODE: u32 = 0o755;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The parent directory is missing and `create_dest_dirs` is false.
    #[error("{0}: parent directory is missing")]
    MissingParent(PathBuf),
    /// Any I/O failure, with what we were doing.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step (`create`, `write`, `rename`, …).
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `new` must be written over what `existing` holds (`None` = no
/// file): only when the bytes differ. An empty output for a missing file is
/// written (upstream #1393).
pub fn needs_write(existing: Option<&[u8]>, new: &[u8]) -> bool {
    existing != Some(new)
}

/// The mode to give the written file: `perms`, else the existing file's, else 0644.
pub fn target_mode(perms: Option<u32>, existing_mode: Option<u32>) -> u32 {
    perms.or(existing_mode).unwrap_or(DEFAULT_MODE) & 0o7777
}

/// A rendered file written next to its destination, not yet installed.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// The temp file (what a check command validates).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Installs the temp file over the destination; with `backup`, the
    /// previous file is kept as `<dest>.bak` (rotated through `.old.bak`).
    pub fn commit(mut self, backup: bool) -> Result<(), WriteError> {
        if backup && self.dest.exists() {
            let bak = suffixed(&self.dest, ".bak");
            let old = suffixed(&self.dest, ".old.bak");
            if bak.exists() {
                fs::rename(&bak, &old).map_err(io("rename", &bak))?;
            }
            fs::hard_link(&self.dest, &bak).map_err(io("link", &bak))?;
            let _ = fs::remove_file(&old);
        }
        fs::rename(&self.tmp, &self.dest).map_err(io("rename", &self.dest))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `contents` to a temp file beside `dest` (fsynced, with the target
/// mode and, when possible, the existing file's owner).
pub fn stage(
    dest: &Path,
    contents: &[u8],
    perms: Option<u32>,
    create_dirs: bool,
) -> Result<Staged, WriteError> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        if !create_dirs {
            return Err(WriteError::MissingParent(dest.to_path_buf()));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .create(&parent)
            .map_err(io("create directory", &parent))?;
        let _ = fs::set_permissions(&parent, fs::Permissions::from_mode(DIR_MODE));
    }
    let existing = fs::metadata(dest).ok();
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = parent.join(format!(
        ".{name}.templater-{}-{:08x}",
        std::process::id(),
        rand::rng().random::<u32>()
    ));
    let staged = Staged {
        tmp: tmp.clone(),
        dest: dest.to_path_buf(),
        committed: false,
    };
    let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(contents).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    if let Some(m) = &existing {
        use std::os::unix::fs::MetadataExt as _;
        // Only root may give a file away; elsewhere keeping our owner is right.
        let _ = std::os::unix::fs::chown(&tmp, Some(m.uid()), Some(m.gid()));
    }
    let mode = target_mode(perms, existing.map(|m| m.permissions().mode()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io("chmod", &tmp))?;
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_only_when_bytes_differ() {
        assert!(needs_write(None, b"x"));
        assert!(
            needs_write(None, b""),
            "empty output for a missing file is written"
        );
        assert!(!needs_write(Some(b"x"), b"x"));
        assert!(needs_write(Some(b"x"), b"y"));
    }

    #[test]
    fn mode_precedence() {
        assert_eq!(target_mode(Some(0o600), Some(0o100640)), 0o600);
        assert_eq!(target_mode(None, Some(0o100640)), 0o640);
        assert_eq!(target_mode(None, None), 0o644);
    }

    #[test]
    fn stage_commit_backup_and_discard() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.conf");
        let s = stage(&dest, b"one", None, true).unwrap();
        assert!(s.path().starts_with(dir.path().join("sub")));
        s.commit(true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o600)).unwrap();
        stage(&dest, b"two", None, true)
            .unwrap()
            .commit(true)
            .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        assert_eq!(fs::read(suffixed(&dest, ".bak")).unwrap(), b"one");
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "existing mode kept");
        // A dropped stage leaves nothing behind.
        let s = stage(&dest, b"three", Some(0o640), true).unwrap();
        let tmp = s.path().to_path_buf();
        assert!(tmp.exists());
        drop(s);
        assert!(!tmp.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        let n = fs::read_dir(dest.parent().unwrap()).unwrap().count();
        assert_eq!(n, 2, "out.conf and out.conf.bak only");
    }

    #[test]
    fn missing_parent_without_create_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("nope/out");
        let e = stage(&dest, b"x", None, false).unwrap_err();
        assert!(
            e.to_string().ends_with("parent directory is missing"),
            "{e}"
        );
    }
}
