//! Staging everything in a worktree without walking it all: what `git add -A` does, at the cost
//! of `git commit -a`.
//!
//! Tracked files are checked against the index's stat data (lstat in parallel, as git's
//! preload-index does); only those that look changed are hashed and staged. New files can only
//! appear in directories whose mtime changed, so only those are read (git's untracked cache does
//! the same); the directories' mtimes are kept in the worktree's private git directory. Whenever
//! ignore rules may have changed (a `.gitignore` or `info/exclude` changed), or without a cache,
//! every directory is read.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::{Index, Oid, Repository};

use crate::error::{Context as _, Result, io_error};

/// File name of the scan cache, in the worktree's private git directory.
const CACHE_FILE: &str = "orchestra-scan-cache";
const CACHE_HEADER: &str = "orchestra-scan-cache v1";

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

/// Finds untracked, not ignored files.
struct Untracked<'a> {
    repo: &'a Repository,
    workdir: &'a Path,
    files: HashSet<&'a Path>,
    dirs: BTreeSet<PathBuf>,
}

struct Found {
    files: Vec<PathBuf>,
    dirs: BTreeMap<PathBuf, Stamp>,
}

impl<'a> Untracked<'a> {
    fn new(repo: &'a Repository, workdir: &'a Path, tracked: &'a [Tracked]) -> Self {
        let files = tracked.iter().map(|e| e.path.as_path()).collect();
        let mut dirs = BTreeSet::from([PathBuf::new()]);
        let mut last: Option<&Path> = None;
        for e in tracked {
            let parent = e.path.parent().unwrap_or(Path::new(""));
            if last == Some(parent) {
                continue;
            }
            last = Some(parent);
            for dir in parent.ancestors() {
                if !dirs.insert(dir.to_path_buf()) {
                    break;
                }
            }
        }
        Untracked {
            repo,
            workdir,
            files,
            dirs,
        }
    }

    /// Reads the directories that changed since `cache` (all of them without one).
    fn scan(&self, cache: Option<&ScanCache>, scan_start: SystemTime) -> Result<Found> {
        let mut found = Found {
            files: Vec::new(),
            dirs: BTreeMap::new(),
        };
        let mut todo: BTreeSet<PathBuf> = self.dirs.clone();
        if let Some(cache) = cache {
            todo.extend(cache.dirs.keys().cloned());
        }
        for dir in todo {
            if found.dirs.contains_key(&dir) {
                continue;
            }
            let Some(now) = Stamp::of_dir(&self.workdir.join(&dir)) else {
                continue;
            };
            let cached = cache.and_then(|c| c.dirs.get(&dir));
            if cached == Some(&now) && now.trusted(scan_start) {
                found.dirs.insert(dir, now);
                continue;
            }
            self.read_dir(&dir, scan_start, &mut found)?;
        }
        found.files.sort();
        Ok(found)
    }

    /// Reads one directory: untracked files are collected, untracked directories read in turn.
    fn read_dir(&self, dir: &Path, scan_start: SystemTime, found: &mut Found) -> Result<()> {
        let full = self.workdir.join(dir);
        let Some(stamp) = Stamp::of_dir(&full) else {
            return Ok(());
        };
        let mut entries: Vec<(PathBuf, bool)> = Vec::new();
        for entry in fs::read_dir(&full).map_err(io_error("read directory", &full))? {
            let entry = entry.map_err(io_error("read directory", &full))?;
            if entry.file_name() == ".git" {
                continue;
            }
            let rel = dir.join(entry.file_name());
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            entries.push((rel, is_dir));
        }
        found.dirs.insert(
            dir.to_path_buf(),
            if stamp.trusted(scan_start) {
                stamp
            } else {
                Stamp::UNSET
            },
        );
        for (rel, is_dir) in entries {
            // A tracked name is skipped unless its kind changed (a file became a directory or
            // the other way round): tracked files are checked by stat, tracked dirs on their own.
            let tracked = if is_dir {
                self.dirs.contains(&rel)
            } else {
                self.files.contains(rel.as_path())
            };
            if tracked {
                continue;
            }
            if self
                .repo
                .is_path_ignored(&rel)
                .ctx(format!("check ignores for {}", rel.display()), self.workdir)?
            {
                continue;
            }
            if !is_dir {
                found.files.push(rel);
            } else if self.workdir.join(&rel).join(".git").exists() {
                tracing::warn!(dir = %rel.display(), "not staging a nested git repository");
            } else if !found.dirs.contains_key(&rel) {
                self.read_dir(&rel, scan_start, found)?;
            }
        }
        Ok(())
    }
}

/// A file's or directory's mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp(u64, u32);

impl Stamp {
    /// Never equal to a real mtime: the directory is read next time.
    const UNSET: Stamp = Stamp(0, 0);

    fn of(path: &Path) -> Option<Stamp> {
        Stamp::from_meta(&fs::symlink_metadata(path).ok()?)
    }

    /// The mtime of a directory (None when `path` is not one, or is gone).
    fn of_dir(path: &Path) -> Option<Stamp> {
        let meta = fs::symlink_metadata(path).ok()?;
        if meta.is_dir() {
            Stamp::from_meta(&meta)
        } else {
            None
        }
    }

    fn from_meta(meta: &Metadata) -> Option<Stamp> {
        let d = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(Stamp(d.as_secs(), d.subsec_nanos()))
    }

    /// Whether entries added later would show in the mtime (it is not within the clock's
    /// granularity of the scan).
    fn trusted(self, scan_start: SystemTime) -> bool {
        let at = UNIX_EPOCH + Duration::new(self.0, self.1);
        self != Stamp::UNSET && at + Duration::from_secs(1) < scan_start
    }

    fn parse(text: &str) -> Option<Stamp> {
        let (s, n) = text.split_once('.')?;
        Some(Stamp(s.parse().ok()?, n.parse().ok()?))
    }
}

/// Identifies one version of the index file: git and libgit2 replace it by renaming a new file
/// over it, so a rewrite changes the inode as well as the mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    mtime: Stamp,
    size: u64,
    ino: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = fs::metadata(path).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let ino = 0;
        Some(FileStamp {
            mtime: Stamp::of(path)?,
            size: meta.len(),
            ino,
        })
    }

    fn mtime(self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.mtime.0, self.mtime.1)
    }
}

/// What the last scan learnt: the directories it saw with their mtimes, the exclude file's
/// mtime then, and the commit the index it wrote matched.
#[derive(Debug, PartialEq, Eq)]
struct ScanCache {
    exclude: Option<Stamp>,
    synced: Option<(Oid, FileStamp)>,
    dirs: BTreeMap<PathBuf, Stamp>,
}

impl ScanCache {
    /// None when missing or unreadable (a full scan then rebuilds it).
    fn load(file: &Path) -> Option<ScanCache> {
        let text = fs::read_to_string(file).ok()?;
        let mut lines = text.lines();
        if lines.next()? != CACHE_HEADER {
            return None;
        }
        let exclude = lines.next()?.strip_prefix("exclude ")?;
        let exclude = if exclude == "-" {
            None
        } else {
            Some(Stamp::parse(exclude)?)
        };
        let synced = lines.next()?.strip_prefix("synced ")?;
        let synced = if synced == "-" {
            None
        } else {
            let mut parts = synced.split(' ');
            let head = Oid::from_str(parts.next()?).ok()?;
            let mtime = Stamp::parse(parts.next()?)?;
            let size = parts.next()?.parse().ok()?;
            let ino = parts.next()?.parse().ok()?;
            Some((head, FileStamp { mtime, size, ino }))
        };
        let mut dirs = BTreeMap::new();
        for line in lines {
            let (secs, rest) = line.split_once(' ')?;
            let (nanos, path) = rest.split_once(' ')?;
            dirs.insert(
                PathBuf::from(path),
                Stamp(secs.parse().ok()?, nanos.parse().ok()?),
            );
        }
        Some(ScanCache {
            exclude,
            synced,
            dirs,
        })
    }

    fn save(&self, file: &Path) -> Result<()> {
        let mut text = format!("{CACHE_HEADER}\n");
        match self.exclude {
            Some(Stamp(s, n)) => text.push_str(&format!("exclude {s}.{n}\n")),
            None => text.push_str("exclude -\n"),
        }
        match self.synced {
            Some((
                head,
                FileStamp {
                    mtime: Stamp(s, n),
                    size,
                    ino,
                },
            )) => {
                text.push_str(&format!("synced {head} {s}.{n} {size} {ino}\n"));
            }
            None => text.push_str("synced -\n"),
        }
        for (dir, Stamp(s, n)) in &self.dirs {
            // A name that is not UTF-8 cannot be written back exactly; leaving it out means it
            // is read every time, which is correct, only slower.
            if let Some(dir) = dir.to_str() {
                text.push_str(&format!("{s} {n} {dir}\n"));
            }
        }
        let tmp = file.with_extension("tmp");
        fs::write(&tmp, text).map_err(io_error("write", &tmp))?;
        fs::rename(&tmp, file).map_err(io_error("write", file))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CACHE_FILE);
        let head = Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        let cache = ScanCache {
            exclude: Some(Stamp(5, 6)),
            synced: Some((
                head,
                FileStamp {
                    mtime: Stamp(7, 8),
                    size: 9,
                    ino: 10,
                },
            )),
            dirs: BTreeMap::from([
                (PathBuf::new(), Stamp(1, 2)),
                (PathBuf::from("a b/c"), Stamp(3, 4)),
            ]),
        };
        cache.save(&file).unwrap();
        assert_eq!(ScanCache::load(&file).unwrap(), cache);
        let empty = ScanCache {
            exclude: None,
            synced: None,
            dirs: BTreeMap::new(),
        };
        empty.save(&file).unwrap();
        assert_eq!(ScanCache::load(&file).unwrap(), empty);
        fs::write(&file, "garbage\n").unwrap();
        assert!(ScanCache::load(&file).is_none());
    }

    #[test]
    fn recent_mtimes_are_not_trusted() {
        let now = SystemTime::now();
        let d = now.duration_since(UNIX_EPOCH).unwrap();
        assert!(!Stamp(d.as_secs(), d.subsec_nanos()).trusted(now));
        assert!(Stamp(d.as_secs() - 5, 0).trusted(now));
        assert!(!Stamp::UNSET.trusted(now));
    }
}
