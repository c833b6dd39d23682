//! Staging everything in a worktree without walking it all: what `git add -A` does, at the cost
//! of `git commit -a`.
//!
//! Tracked files are checked against the index's stat data (lstat in parallel, as git's
//! preload-index does); only those that look changed are hashed and staged. New files can only
//! appear in directories whose mtime changed, so only those are read (git's untracked cache does
//! the same); the directories' mtimes are kept in the worktree's private git directory. Whenever
//! ignore rules may have changed (a `.gitignore` or `info/exclude` changed), or without a cache,
//! every directory is read.

use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::{Index, Oid, Repository};

use crate::error::{Context as _, Result};

mod cache;
mod untracked;

use cache::{CACHE_FILE, FileStamp, ScanCache, Stamp};
use untracked::Untracked;

/// The result of [`stage_all`].
pub(crate) struct Staged {
    /// The paths whose index entries were added, updated or removed, sorted.
    pub(crate) paths: Vec<PathBuf>,
    /// The commit the index was known to match before staging: the last commit made through
    /// this module, when the index file is still the one written then.
    pub(crate) in_sync_with: Option<Oid>,
    file: PathBuf,
    index_file: PathBuf,
    cache: ScanCache,
}

impl Staged {
    /// Remembers the directories read, and that the index (written by now) matches `head`.
    /// Called only after the index is written, or the new files' directories could count as
    /// seen while the files are not in the index.
    pub(crate) fn save(mut self, head: Oid) -> Result<()> {
        self.cache.synced = FileStamp::of(&self.index_file).map(|stamp| (head, stamp));
        self.cache.save(&self.file)
    }
}

/// Drops the worktree's scan cache (after its files were rewritten behind the cache's back), so
/// the next staging reads every directory.
pub(crate) fn forget(repo: &Repository) {
    let _ = fs::remove_file(repo.path().join(CACHE_FILE));
}

/// Stages every change in the worktree at `workdir` into `index` (not written): changed and
/// new files are added, deleted ones removed, ignored files left out.
pub(crate) fn stage_all(repo: &Repository, index: &mut Index, workdir: &Path) -> Result<Staged> {
    let scan_start = SystemTime::now();
    let index_file = repo.path().join("index");
    let index_stamp = FileStamp::of(&index_file);
    let tracked: Vec<Tracked> = index.iter().map(Tracked::from).collect();
    let changed = changed_tracked(&tracked, workdir, index_stamp.map(FileStamp::mtime));

    let file = repo.path().join(CACHE_FILE);
    let exclude = Stamp::of(&repo.commondir().join("info").join("exclude"));
    let loaded = ScanCache::load(&file);
    let in_sync_with = loaded
        .as_ref()
        .and_then(|c| c.synced)
        .filter(|(_, stamp)| Some(*stamp) == index_stamp)
        .map(|(head, _)| head);
    let rules_changed = changed.iter().any(|p| is_ignore_file(p));
    let dir_cache = loaded.filter(|c| c.exclude == exclude && !rules_changed);
    let scanner = Untracked::new(repo, workdir, &tracked);
    let mut found = scanner.scan(dir_cache.as_ref(), scan_start)?;
    if dir_cache.is_some() && found.files.iter().any(|p| is_ignore_file(p)) {
        // A new ignore file may re-include what was ignored before: read everything.
        found = scanner.scan(None, scan_start)?;
    }

    for path in &changed {
        let meta = fs::symlink_metadata(workdir.join(path));
        if meta.is_ok_and(|m| !m.is_dir()) {
            index
                .add_path(path)
                .ctx(format!("stage {}", path.display()), workdir)?;
        } else {
            index
                .remove_path(path)
                .ctx(format!("unstage {}", path.display()), workdir)?;
        }
    }
    for path in &found.files {
        index
            .add_path(path)
            .ctx(format!("stage {}", path.display()), workdir)?;
    }
    tracing::trace!(
        changed = changed.len(),
        added = found.files.len(),
        "staged worktree changes"
    );
    let mut paths = changed;
    paths.extend(found.files);
    paths.sort();
    Ok(Staged {
        paths,
        in_sync_with,
        file,
        index_file,
        cache: ScanCache {
            exclude,
            synced: None,
            dirs: found.dirs,
        },
    })
}

/// What the index knows about a tracked path.
struct Tracked {
    path: PathBuf,
    stage: u16,
    mode: u32,
    mtime: (i32, u32),
    ctime: (i32, u32),
    size: u32,
    ino: u32,
}

impl From<git2::IndexEntry> for Tracked {
    fn from(e: git2::IndexEntry) -> Self {
        Tracked {
            path: path_from_bytes(&e.path),
            stage: (e.flags >> 12) & 0x3,
            mode: e.mode,
            mtime: (e.mtime.seconds(), e.mtime.nanoseconds()),
            ctime: (e.ctime.seconds(), e.ctime.nanoseconds()),
            size: e.file_size,
            ino: e.ino,
        }
    }
}

impl Tracked {
    /// Whether the file may differ from the index (false only when the stat data proves not).
    fn maybe_changed(&self, meta: &Metadata, index_mtime: Option<SystemTime>) -> bool {
        const TYPE: u32 = 0o170000;
        if self.stage != 0 {
            return true;
        }
        let kind_matches = match self.mode & TYPE {
            0o100000 => meta.is_file(),
            0o120000 => meta.file_type().is_symlink(),
            0o160000 => return false, // a submodule: not ours to stage
            _ => false,
        };
        if !kind_matches || !stat_matches(self, meta) {
            return true;
        }
        // Racily clean: written in the same instant as the index, so stat cannot tell.
        let mtime = UNIX_EPOCH + Duration::new(u64::from(self.mtime.0 as u32), self.mtime.1);
        index_mtime.is_none_or(|index| mtime >= index)
    }
}

#[cfg(unix)]
fn stat_matches(e: &Tracked, meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // The index keeps 32-bit fields; compare the same truncations git and libgit2 write.
    let exec_matches =
        e.mode & 0o170000 != 0o100000 || (meta.mode() & 0o100 != 0) == (e.mode & 0o100 != 0);
    exec_matches
        && meta.mtime() as i32 == e.mtime.0
        && meta.mtime_nsec() as u32 == e.mtime.1
        && meta.ctime() as i32 == e.ctime.0
        && meta.ctime_nsec() as u32 == e.ctime.1
        && meta.size() as u32 == e.size
        && meta.ino() as u32 == e.ino
}

#[cfg(not(unix))]
fn stat_matches(e: &Tracked, meta: &Metadata) -> bool {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    mtime.is_some_and(|d| d.as_secs() as i32 == e.mtime.0 && d.subsec_nanos() == e.mtime.1)
        && meta.len() as u32 == e.size
}

/// The tracked paths that may have changed, were deleted, or are conflicted; lstat runs on a
/// few threads since that is where the time goes on a large tree.
fn changed_tracked(
    tracked: &[Tracked],
    workdir: &Path,
    index_mtime: Option<SystemTime>,
) -> Vec<PathBuf> {
    let check = |chunk: &[Tracked]| -> Vec<PathBuf> {
        chunk
            .iter()
            .filter(|e| match fs::symlink_metadata(workdir.join(&e.path)) {
                Ok(meta) => e.maybe_changed(&meta, index_mtime),
                Err(_) => e.mode & 0o170000 != 0o160000,
            })
            .map(|e| e.path.clone())
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get() * 4)
        .min(16);
    let threads = threads.min(tracked.len() / 500 + 1);
    let mut out: Vec<PathBuf> = if threads <= 1 {
        check(tracked)
    } else {
        let size = tracked.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = tracked
                .chunks(size)
                .map(|chunk| s.spawn(move || check(chunk)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|_| check(tracked)))
                .collect()
        })
    };
    out.sort();
    out.dedup();
    out
}

fn is_ignore_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == ".gitignore")
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}
