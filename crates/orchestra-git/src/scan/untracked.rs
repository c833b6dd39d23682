//! Finding new files: only directories whose mtime changed since the last scan are read.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use git2::Repository;

use super::Tracked;
use super::cache::{ScanCache, Stamp};
use crate::error::{Context as _, Result, io_error};

/// Finds untracked, not ignored files.
pub(super) struct Untracked<'a> {
    repo: &'a Repository,
    workdir: &'a Path,
    files: HashSet<&'a Path>,
    dirs: BTreeSet<PathBuf>,
}

/// What a scan found: the new files, and every directory it saw with its mtime.
pub(super) struct Found {
    pub(super) files: Vec<PathBuf>,
    pub(super) dirs: BTreeMap<PathBuf, Stamp>,
}

impl<'a> Untracked<'a> {
    pub(super) fn new(repo: &'a Repository, workdir: &'a Path, tracked: &'a [Tracked]) -> Self {
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
    pub(super) fn scan(&self, cache: Option<&ScanCache>, scan_start: SystemTime) -> Result<Found> {
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
