//! What a scan remembers for the next one, in the worktree's private git directory: directory
//! mtimes, the exclude file's mtime, and which commit the index written last matched.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::Oid;

use crate::error::{Result, io_error};

/// File name of the scan cache.
pub(super) const CACHE_FILE: &str = "orchestra-scan-cache";
const CACHE_HEADER: &str = "orchestra-scan-cache v1";

/// A file's or directory's mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp(pub(super) u64, pub(super) u32);

impl Stamp {
    /// Never equal to a real mtime: the directory is read next time.
    pub(super) const UNSET: Stamp = Stamp(0, 0);

    pub(super) fn of(path: &Path) -> Option<Stamp> {
        Stamp::from_meta(&fs::symlink_metadata(path).ok()?)
    }

    /// The mtime of a directory (None when `path` is not one, or is gone).
    pub(super) fn of_dir(path: &Path) -> Option<Stamp> {
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
    pub(super) fn trusted(self, scan_start: SystemTime) -> bool {
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
pub(super) struct FileStamp {
    mtime: Stamp,
    size: u64,
    ino: u64,
}

impl FileStamp {
    pub(super) fn of(path: &Path) -> Option<FileStamp> {
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

    pub(super) fn mtime(self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.mtime.0, self.mtime.1)
    }
}

/// What the last scan learnt: the directories it saw with their mtimes, the exclude file's
/// mtime then, and the commit the index it wrote matched.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ScanCache {
    pub(super) exclude: Option<Stamp>,
    pub(super) synced: Option<(Oid, FileStamp)>,
    pub(super) dirs: BTreeMap<PathBuf, Stamp>,
}

impl ScanCache {
    /// None when missing or unreadable (a full scan then rebuilds it).
    pub(super) fn load(file: &Path) -> Option<ScanCache> {
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

    pub(super) fn save(&self, file: &Path) -> Result<()> {
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

#[cfg(test)]
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
