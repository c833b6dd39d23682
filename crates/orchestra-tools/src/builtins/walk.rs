//! Walking a repository's files for `list-files` and `search-code`: sorted, never following
//! symbolic links, skipping `.git` and (in git repositories) untracked files that git ignores.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a directory entry is (symbolic links are not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A directory entry.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) path: PathBuf,
    pub(super) kind: Kind,
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Every entry was visited.
    Done,
    /// The visitor stopped it.
    Stopped,
    /// The deadline passed.
    OutOfTime,
}

/// Git's view of the repository, to skip ignored files.
struct GitView {
    repo: git2::Repository,
    index: Option<git2::Index>,
    /// The walked root relative to the repository's working directory.
    prefix: PathBuf,
}

/// Lists directories under a canonical root.
pub(super) struct Walker {
    root: PathBuf,
    git: Option<GitView>,
}

impl Walker {
    /// A walker for `root` (canonical); uses the enclosing git repository, if any, for ignores.
    pub(super) fn new(root: &Path) -> Self {
        let git = git2::Repository::discover(root).ok().and_then(|repo| {
            let workdir = std::fs::canonicalize(repo.workdir()?).ok()?;
            let prefix = root.strip_prefix(&workdir).ok()?.to_path_buf();
            let index = repo.index().ok();
            Some(GitView {
                repo,
                index,
                prefix,
            })
        });
        Walker {
            root: root.to_path_buf(),
            git,
        }
    }

    /// Whether git ignores `path` (and does not track it).
    fn ignored(&self, path: &Path, kind: Kind) -> bool {
        let Some(git) = &self.git else {
            return false;
        };
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let in_repo = git.prefix.join(rel);
        if !git.repo.is_path_ignored(&in_repo).unwrap_or(false) {
            return false;
        }
        // A tracked file stays visible even when a pattern matches it.
        let tracked = kind != Kind::Dir
            && git
                .index
                .as_ref()
                .is_some_and(|index| index.get_path(&in_repo, 0).is_some());
        !tracked
    }

    /// The entries of `dir`, sorted by name, without `.git` and ignored files.
    pub(super) fn children(&self, dir: &Path) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name() == ".git" {
                continue;
            }
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => Kind::Symlink,
                Ok(t) if t.is_dir() => Kind::Dir,
                Ok(t) if t.is_file() => Kind::File,
                _ => Kind::Other,
            };
            let path = entry.path();
            if self.ignored(&path, kind) {
                continue;
            }
            entries.push(Entry { path, kind });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Visits every non-directory entry below `dir` depth-first in sorted order, without following
    /// symbolic links. Unreadable directories are skipped.
    pub(super) fn walk(
        &self,
        dir: &Path,
        deadline: Instant,
        visit: &mut dyn FnMut(&Entry) -> ControlFlow<()>,
    ) -> End {
        let children = match self.children(dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "skipping unreadable directory");
                return End::Done;
            }
        };
        for entry in &children {
            if Instant::now() >= deadline {
                return End::OutOfTime;
            }
            if entry.kind == Kind::Dir {
                match self.walk(&entry.path, deadline, visit) {
                    End::Done => {}
                    other => return other,
                }
            } else if visit(entry).is_break() {
                return End::Stopped;
            }
        }
        End::Done
    }
}
