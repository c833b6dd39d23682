//! Moving a compiled pipeline to another project root: what a session stores has its paths
//! relative to the project, so a moved or re-cloned project (or another machine's clone) goes on
//! with its own files.

use std::path::{Path, PathBuf};

use crate::Compiled;
use crate::conditions::ConditionSource;

impl Compiled {
    /// Moves every path under the project root to the same place under `to`, which becomes the
    /// project root; paths outside the project (`~/.orchestra/` layers, files given by absolute
    /// path elsewhere) stay as they are. `relocate("")` makes the paths relative to the project
    /// (what a session stores); relocating that to a directory makes them absolute again.
    pub fn relocate(&mut self, to: &Path) {
        let from = std::mem::replace(&mut self.project_root, to.to_path_buf());
        let move_path = |p: &mut PathBuf| {
            if let Some(moved) = rebase(p, &from, to) {
                *p = moved;
            }
        };
        move_path(&mut self.pipeline_path);
        // The path the pipeline was shown by depends on the directory `compile` ran in: stored
        // and read back, it is the pipeline's own path (so its hash does not depend on that).
        self.source.path = self.pipeline_path.clone();
        if let Some(f) = &mut self.project_file {
            move_path(f);
        }
        for p in self.providers.values_mut() {
            move_path(&mut p.declared_in);
            if let Some(r) = &mut p.responses {
                move_path(r);
            }
        }
        for m in self.mcp_servers.values_mut() {
            move_path(&mut m.declared_in);
        }
        for r in &mut self.repos {
            move_path(&mut r.path);
        }
        for c in self.conditions.values_mut() {
            match &mut c.source {
                ConditionSource::Rules(rules) => move_path(&mut rules.path),
                ConditionSource::Executable { path, .. } => move_path(path),
                ConditionSource::Registered => {}
            }
        }
        for a in &mut self.agents {
            for l in &mut a.layers {
                move_path(&mut l.path);
            }
            // A called pipeline is in the same project: it moves with it.
            if let Some(call) = &mut a.call {
                call.compiled.relocate(to);
            }
        }
    }
}

/// `p` moved from under `from` to under `to`; `None` when it is not under `from` (a relative
/// `from`, such as the empty path, only holds relative paths).
fn rebase(p: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    if p.is_absolute() != from.is_absolute() && !from.as_os_str().is_empty() {
        return None;
    }
    if from.as_os_str().is_empty() && p.is_absolute() {
        return None;
    }
    let rest = p.strip_prefix(from).ok()?;
    Some(if rest.as_os_str().is_empty() {
        to.to_path_buf()
    } else {
        to.join(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_root_move_and_others_stay() {
        let (old, new) = (Path::new("/old/proj"), Path::new("/new/place"));
        let rel = |p: &str| rebase(Path::new(p), old, Path::new(""));
        assert_eq!(
            rel("/old/proj/pipelines/a.yaml"),
            Some("pipelines/a.yaml".into())
        );
        assert_eq!(rel("/old/proj"), Some("".into()));
        assert_eq!(rel("/home/u/.orchestra/roles/r.yaml"), None);
        assert_eq!(
            rel("/old/project2/x"),
            None,
            "a sibling with a common prefix"
        );
        let abs = |p: &str| rebase(Path::new(p), Path::new(""), new);
        assert_eq!(
            abs("pipelines/a.yaml"),
            Some("/new/place/pipelines/a.yaml".into())
        );
        assert_eq!(abs(""), Some("/new/place".into()));
        assert_eq!(abs("/home/u/.orchestra/roles/r.yaml"), None);
        assert_eq!(
            rebase(Path::new("/old/proj/x"), old, new),
            Some("/new/place/x".into())
        );
    }
}
