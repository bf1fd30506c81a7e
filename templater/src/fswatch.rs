//! File change notification (inotify through `notify`), shared by `file`
//! dependencies and template sources.
//!
//! We watch the *parent directory* of each file, not the file: editors and
//! config tools replace files by rename, which would leave an inode watch on
//! the old file. Callers still poll as a fallback (network filesystems and
//! containers do not always deliver events).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Watches a set of files; [`FileWatch::changed`] yields when any may have changed.
pub struct FileWatch {
    // Dropping the watcher stops the notifications.
    _watcher: Option<notify::RecommendedWatcher>,
    rx: mpsc::UnboundedReceiver<()>,
}

impl FileWatch {
    /// Watches `files` (absolute or relative to the working directory). A
    /// failure to set up inotify is not fatal: the caller's polling remains.
    pub fn new(files: &[PathBuf]) -> FileWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let names: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let wanted = names.clone();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // Reads (open/close/access events) are not changes: re-reading a
            // source would otherwise wake us again.
            if let Ok(ev) = ev
                && !matches!(ev.kind, notify::EventKind::Access(_))
                && ev.paths.iter().any(|p| wanted.contains(p))
            {
                let _ = tx.send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(error = %e, "file notifications unavailable; polling");
                return FileWatch { _watcher: None, rx };
            }
        };
        let dirs: BTreeSet<PathBuf> = names
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        for dir in dirs {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; polling");
            }
        }
        FileWatch {
            _watcher: Some(watcher),
            rx,
        }
    }

    /// Waits for the next notification (drains bursts into one).
    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_none() {
            // No watcher: never wakes; the caller's poll timer takes over.
            std::future::pending::<()>().await;
        }
        while self.rx.try_recv().is_ok() {}
    }
}

/// `path` made absolute against the working directory (not canonicalized:
/// the file may not exist yet, and inotify reports the path we watch).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}
