//! Three-level file discovery: the pipeline's directory, then the project's search paths
//! (`orchestra.yaml`), then `~/.orchestra/`. The first hit wins and the level is reported.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::project::PROJECT_FILE;

/// Where a discovered file came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "level", content = "root")]
pub enum Level {
    /// Relative to the pipeline file's directory.
    Pipeline,
    /// One of the project's search paths (the path as written in `orchestra.yaml`).
    SearchPath(String),
    /// The user's `~/.orchestra/`.
    Home,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Pipeline => f.write_str("pipeline directory"),
            Level::SearchPath(p) => write!(f, "search path `{p}`"),
            Level::Home => f.write_str("~/.orchestra"),
        }
    }
}

/// A file found by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The file's path.
    pub path: PathBuf,
    /// Which level it was found at.
    pub level: Level,
}

/// The ordered roots searched for prompt layers and conditions.
#[derive(Clone, Debug)]
pub struct Discovery {
    roots: Vec<(Level, PathBuf)>,
}

impl Discovery {
    /// Builds the search order: `pipeline_dir`, then each search path resolved against
    /// `project_dir`, then `home` (normally `~/.orchestra`). Duplicate directories are kept once
    /// (the first level wins).
    pub fn new(
        pipeline_dir: &Path,
        project: Option<(&Path, &[String])>,
        home: Option<PathBuf>,
    ) -> Self {
        let mut roots: Vec<(Level, PathBuf)> = vec![(Level::Pipeline, pipeline_dir.to_path_buf())];
        if let Some((dir, paths)) = project {
            for p in paths {
                roots.push((Level::SearchPath(p.clone()), dir.join(p)));
            }
        }
        if let Some(h) = home {
            roots.push((Level::Home, h));
        }
        let mut seen: Vec<PathBuf> = Vec::new();
        roots.retain(|(_, p)| {
            let key = normalize(p);
            if seen.contains(&key) {
                false
            } else {
                seen.push(key);
                true
            }
        });
        Discovery { roots }
    }

    /// The roots in search order.
    pub fn roots(&self) -> &[(Level, PathBuf)] {
        &self.roots
    }

    /// Finds `rel` (e.g. `prompts/roles/reviewer.yaml`) under the roots; first hit wins.
    pub fn find(&self, rel: &Path) -> Option<Found> {
        self.roots.iter().find_map(|(level, root)| {
            let p = root.join(rel);
            p.is_file().then(|| Found {
                path: p,
                level: level.clone(),
            })
        })
    }

    /// Finds the first file under the roots that `accept` likes in directory `dir`, e.g. an
    /// executable `conditions/NAME.*`.
    pub fn find_with(&self, dir: &Path, mut accept: impl FnMut(&Path) -> bool) -> Option<Found> {
        for (level, root) in &self.roots {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            if let Some(p) = paths.into_iter().find(|p| p.is_file() && accept(p)) {
                return Some(Found {
                    path: p,
                    level: level.clone(),
                });
            }
        }
        None
    }

    /// The places `rel` was looked for, for "not found" messages.
    pub fn candidates(&self, rel: &Path) -> Vec<PathBuf> {
        self.roots.iter().map(|(_, r)| r.join(rel)).collect()
    }

    /// Names of the files with extension `ext` in directory `dir` across all roots (stems), for
    /// "did you mean".
    pub fn names_in(&self, dir: &Path, ext: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (_, root) in &self.roots {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) == Some(ext)
                    && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                    && !names.iter().any(|n| n == stem)
                {
                    names.push(stem.to_owned());
                }
            }
        }
        names.sort();
        names
    }
}

/// Finds `orchestra.yaml` in `start` or its ancestors.
pub fn find_project_file(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(PROJECT_FILE))
        .find(|p| p.is_file())
}

fn normalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_level_wins_and_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let pipe = tmp.path().join("pipelines");
        let proj = tmp.path().join("shared");
        let home = tmp.path().join("home");
        for d in [&pipe, &proj, &home] {
            std::fs::create_dir_all(d.join("prompts/roles")).unwrap();
        }
        std::fs::write(home.join("prompts/roles/a.yaml"), "text: h").unwrap();
        std::fs::write(proj.join("prompts/roles/a.yaml"), "text: p").unwrap();
        std::fs::write(home.join("prompts/roles/b.yaml"), "text: h").unwrap();
        let d = Discovery::new(
            &pipe,
            Some((tmp.path(), &["shared".to_owned()])),
            Some(home.clone()),
        );
        let a = d.find(Path::new("prompts/roles/a.yaml")).unwrap();
        assert_eq!(a.level, Level::SearchPath("shared".into()));
        assert_eq!(a.path, proj.join("prompts/roles/a.yaml"));
        std::fs::write(pipe.join("prompts/roles/a.yaml"), "text: x").unwrap();
        assert_eq!(
            d.find(Path::new("prompts/roles/a.yaml")).unwrap().level,
            Level::Pipeline
        );
        assert_eq!(
            d.find(Path::new("prompts/roles/b.yaml")).unwrap().level,
            Level::Home
        );
        assert!(d.find(Path::new("prompts/roles/c.yaml")).is_none());
        assert_eq!(
            d.names_in(Path::new("prompts/roles"), "yaml"),
            vec!["a", "b"]
        );
    }
}
