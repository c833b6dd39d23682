//! Path confinement: every path a model gives is resolved inside its repository, or refused.
//!
//! Absolute paths are refused; `..` may not climb above the root; and the longest existing prefix
//! of the path is canonicalized (following symbolic links) and must still be under the canonical
//! root. Writes additionally refuse `.git` and symbolic links that point nowhere (writing through
//! one would create its target, wherever that is).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::ToolFailure;

/// A repository as the tools see it: a name (the `app` of `app:read-file`), the directory the
/// tools act on, and whether it may be written.
///
/// For a writable repository during a run, `root` is the session's git worktree; otherwise it is
/// the repository itself. It may also be a subdirectory of a git repository, in which case the
/// tools see only that subdirectory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRoot {
    /// The repository's name in tool names (`app` in `app:read-file`).
    pub name: String,
    /// The directory the tools act on.
    pub root: PathBuf,
    /// Whether `write-file` is registered for it.
    pub writable: bool,
}

impl RepoRoot {
    /// A repository root.
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>, writable: bool) -> Self {
        RepoRoot {
            name: name.into(),
            root: root.into(),
            writable,
        }
    }
}

/// Why a path was refused. The messages are written for the model.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PathError {
    #[error("a path is required")]
    Empty,
    #[error("path contains a NUL byte")]
    Nul,
    #[error(
        "`{path}` is an absolute path; paths are relative to the root of repository `{repo}` \
         (for example `src/main.rs`)"
    )]
    Absolute { repo: String, path: String },
    #[error("`{path}` leaves repository `{repo}`: `..` may not climb above its root")]
    Escapes { repo: String, path: String },
    #[error("`{path}` resolves outside repository `{repo}` through a symbolic link; refused")]
    Symlink { repo: String, path: String },
    #[error("`{path}` is a symbolic link that points nowhere; refusing to write through it")]
    DanglingLink { path: String },
    #[error(
        "`{path}` is inside `.git`; the tools never read or write there (it may hold credentials)"
    )]
    GitDir { path: String },
    #[error(
        "no such file or directory `{path}` in repository `{repo}`{}",
        hint(suggestions)
    )]
    NotFound {
        repo: String,
        path: String,
        suggestions: Vec<String>,
    },
    #[error("`{path}` is not a directory")]
    NotADirectory { path: String },
    #[error("cannot access `{path}`")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the root of repository `{repo}` ({root}) cannot be opened")]
    Root {
        repo: String,
        root: String,
        #[source]
        source: io::Error,
    },
}

impl From<PathError> for ToolFailure {
    fn from(e: PathError) -> Self {
        ToolFailure::new(crate::error_chain(&e))
    }
}

fn hint(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!("; did you mean one of `{}`?", many.join("`, `")),
    }
}

/// Whether an I/O error means "there is nothing at this path" (including a file used as a
/// directory on the way).
fn missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A path resolved inside a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Where to act: canonical for the existing part, plus the components still to be created.
    pub(crate) abs: PathBuf,
    /// The path relative to the root, `/`-separated (`.` for the root itself), for messages.
    pub(crate) rel: String,
}

/// A repository root, canonicalized once per call.
#[derive(Clone, Debug)]
pub(crate) struct Confined {
    pub(crate) repo: String,
    pub(crate) root: PathBuf,
}

impl Confined {
    /// Canonicalizes `repo.root`.
    pub(crate) fn open(repo: &RepoRoot) -> Result<Self, PathError> {
        let root = std::fs::canonicalize(&repo.root).map_err(|source| PathError::Root {
            repo: repo.name.clone(),
            root: repo.root.display().to_string(),
            source,
        })?;
        Ok(Confined {
            repo: repo.name.clone(),
            root,
        })
    }

    /// `path` relative to the root, as a `/`-separated string (`.` for the root).
    pub(crate) fn rel_of(&self, path: &Path) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.is_empty() {
            ".".to_owned()
        } else {
            parts.join("/")
        }
    }

    /// Splits `input` into normal components, refusing absolute paths and `..` above the root.
    fn components(&self, input: &str) -> Result<Vec<OsString>, PathError> {
        if input.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut parts: Vec<OsString> = Vec::new();
        for component in Path::new(input).components() {
            match component {
                Component::Normal(p) => parts.push(p.to_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escapes {
                            repo: self.repo.clone(),
                            path: input.to_owned(),
                        });
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(PathError::Absolute {
                        repo: self.repo.clone(),
                        path: input.to_owned(),
                    });
                }
            }
        }
        Ok(parts)
    }

    /// `input` as a normalized path relative to the root, checked lexically only (it need not
    /// exist; nothing is followed). For naming paths to git, which reads its own objects.
    pub(crate) fn lexical(&self, input: &str) -> Result<PathBuf, PathError> {
        Ok(self.components(input)?.into_iter().collect())
    }

    fn join(&self, parts: &[OsString]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(parts);
        p
    }

    /// Checks that a canonical path is under the root.
    fn inside(&self, canonical: &Path, input: &str) -> Result<(), PathError> {
        if canonical.starts_with(&self.root) {
            Ok(())
        } else {
            Err(PathError::Symlink {
                repo: self.repo.clone(),
                path: input.to_owned(),
            })
        }
    }

    /// Resolves a path that must exist (read-file, list-files, search-code). An empty path is the
    /// root.
    pub(crate) fn existing(&self, input: &str) -> Result<Resolved, PathError> {
        let parts = self.components(input)?;
        if parts
            .iter()
            .any(|p| p.to_string_lossy().eq_ignore_ascii_case(".git"))
        {
            return Err(PathError::GitDir {
                path: input.to_owned(),
            });
        }
        let joined = self.join(&parts);
        match std::fs::canonicalize(&joined) {
            Ok(canonical) => {
                self.inside(&canonical, input)?;
                if canonical.starts_with(self.root.join(".git")) {
                    return Err(PathError::GitDir {
                        path: input.to_owned(),
                    });
                }
                Ok(Resolved {
                    rel: self.rel_of(&joined),
                    abs: canonical,
                })
            }
            Err(e) if missing(&e) => Err(self.not_found(input, &parts)),
            Err(source) => Err(PathError::Io {
                path: input.to_owned(),
                source,
            }),
        }
    }

    /// Explains a missing path: an escape if its existing prefix leaves the root, else "not
    /// found" with the names in the deepest existing directory that look like the missing one.
    fn not_found(&self, input: &str, parts: &[OsString]) -> PathError {
        for depth in (0..parts.len()).rev() {
            let prefix = self.join(&parts[..depth]);
            let Ok(canonical) = std::fs::canonicalize(&prefix) else {
                continue;
            };
            if let Err(e) = self.inside(&canonical, input) {
                return e;
            }
            let missing = parts[depth].to_string_lossy();
            let names: Vec<String> = std::fs::read_dir(&canonical)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .take(5000)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let base = self.rel_of(&prefix);
            let suggestions = orchestra_spec::closest(&missing, names.iter().map(String::as_str))
                .into_iter()
                .map(|n| {
                    if base == "." {
                        n.to_owned()
                    } else {
                        format!("{base}/{n}")
                    }
                })
                .collect();
            return PathError::NotFound {
                repo: self.repo.clone(),
                path: input.to_owned(),
                suggestions,
            };
        }
        PathError::NotFound {
            repo: self.repo.clone(),
            path: input.to_owned(),
            suggestions: Vec::new(),
        }
    }

    /// Resolves a path to write: it need not exist, but its longest existing prefix must be
    /// inside the root (after symbolic links), that prefix must be a directory unless it is the
    /// whole path, and nothing may be written inside `.git`.
    pub(crate) fn for_write(&self, input: &str) -> Result<Resolved, PathError> {
        let parts = self.components(input)?;
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        let is_git = |p: &std::ffi::OsStr| p.to_string_lossy().eq_ignore_ascii_case(".git");
        if parts.iter().any(|p| is_git(p)) {
            return Err(PathError::GitDir {
                path: input.to_owned(),
            });
        }
        for depth in (0..=parts.len()).rev() {
            let prefix = self.join(&parts[..depth]);
            let meta = match std::fs::symlink_metadata(&prefix) {
                Ok(meta) => meta,
                Err(e) if missing(&e) => continue,
                Err(source) => {
                    return Err(PathError::Io {
                        path: input.to_owned(),
                        source,
                    });
                }
            };
            let canonical = match std::fs::canonicalize(&prefix) {
                Ok(c) => c,
                Err(_) if meta.file_type().is_symlink() => {
                    return Err(PathError::DanglingLink {
                        path: self.rel_of(&prefix),
                    });
                }
                Err(source) => {
                    return Err(PathError::Io {
                        path: input.to_owned(),
                        source,
                    });
                }
            };
            self.inside(&canonical, input)?;
            if depth < parts.len() && !canonical.is_dir() {
                return Err(PathError::NotADirectory {
                    path: self.rel_of(&prefix),
                });
            }
            let mut abs = canonical;
            abs.extend(&parts[depth..]);
            // A link inside the repository may still lead into `.git` (e.g. to `.git/hooks`).
            let within = abs.strip_prefix(&self.root).unwrap_or(&abs);
            if within.components().any(|c| is_git(c.as_os_str())) {
                return Err(PathError::GitDir {
                    path: input.to_owned(),
                });
            }
            return Ok(Resolved {
                rel: self.rel_of(&self.join(&parts)),
                abs,
            });
        }
        // Unreachable in practice: depth 0 is the root itself, which exists.
        Err(PathError::Root {
            repo: self.repo.clone(),
            root: self.root.display().to_string(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined() -> (tempfile::TempDir, Confined) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/nested")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        let c = Confined::open(&RepoRoot::new("app", dir.path(), true)).unwrap();
        (dir, c)
    }

    #[test]
    fn relative_paths_resolve_inside() {
        let (_d, c) = confined();
        let r = c.existing("src/./nested/../main.rs").unwrap();
        assert_eq!(r.rel, "src/main.rs");
        assert!(r.abs.ends_with("src/main.rs"));
        assert_eq!(c.existing("").unwrap().rel, ".");
        assert_eq!(c.existing(".").unwrap().abs, c.root);
    }

    #[test]
    fn climbing_and_absolute_paths_are_refused() {
        let (_d, c) = confined();
        assert!(matches!(c.existing("../x"), Err(PathError::Escapes { .. })));
        assert!(matches!(
            c.existing("src/../../x"),
            Err(PathError::Escapes { .. })
        ));
        assert!(matches!(
            c.for_write("/etc/passwd"),
            Err(PathError::Absolute { .. })
        ));
        assert!(matches!(c.existing("a\0b"), Err(PathError::Nul)));
    }

    #[test]
    fn missing_files_get_suggestions() {
        let (_d, c) = confined();
        let e = c.existing("src/mian.rs").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no such file or directory `src/mian.rs` in repository `app`; did you mean `src/main.rs`?"
        );
    }

    #[test]
    fn reads_refuse_git_even_through_a_link() {
        let (d, c) = confined();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::write(
            d.path().join(".git/config"),
            "url = https://user:secret@host/x\n",
        )
        .unwrap();
        assert!(matches!(
            c.existing(".git/config"),
            Err(PathError::GitDir { .. })
        ));
        assert!(matches!(
            c.existing("src/../.git/config"),
            Err(PathError::GitDir { .. })
        ));
        std::os::unix::fs::symlink(d.path().join(".git/config"), d.path().join("cfg")).unwrap();
        assert!(matches!(c.existing("cfg"), Err(PathError::GitDir { .. })));
    }

    #[test]
    fn writes_refuse_git_and_files_as_directories() {
        let (_d, c) = confined();
        assert!(matches!(
            c.for_write(".git/hooks/pre-commit"),
            Err(PathError::GitDir { .. })
        ));
        assert!(matches!(
            c.for_write("src/main.rs/x"),
            Err(PathError::NotADirectory { .. })
        ));
        assert!(matches!(c.for_write("."), Err(PathError::Empty)));
        let r = c.for_write("new/dir/file.txt").unwrap();
        assert_eq!(r.rel, "new/dir/file.txt");
        assert_eq!(r.abs, c.root.join("new/dir/file.txt"));
    }
}
