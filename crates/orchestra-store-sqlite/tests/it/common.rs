//! What the test modules share: the conformance suite's record builders and the usual place of
//! a project's database.

use std::path::{Path, PathBuf};

pub use orchestra_store::conformance::{checkpoint, new_session, node_run, task};

/// `.orchestra/orchestra.db` under `dir` (its directory does not exist yet).
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(".orchestra").join("orchestra.db")
}
