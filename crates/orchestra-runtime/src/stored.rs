//! What a session stores of its pipeline, and how older stored forms are read.
//!
//! The compiled pipeline is stored as `{"format": N, "scheduler_format": M, "compiled": ...}`
//! with its paths relative to the project root, so the session goes on from a moved or
//! re-cloned project. Format 1 (release 0.1) stored the bare compiled pipeline with absolute
//! paths: it is read by moving those paths from the root it was made in to the current one.
//! `scheduler_format` versions the scheduler state in the session's checkpoints: format 2 added
//! `failed` (the edge into `FAIL` that ended the session) and quorum joins (`join: N`, counted
//! in `arrived` like `join: all`); format 3 added `for_each` (the ready agents a `for_each`
//! edge fans out, so a resumed step runs the same instances); format 1 and 2 checkpoints read
//! as they are, since every field added has a default. A session stored by a newer orchestra
//! is refused with a clear error.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use orchestra_graph::Compiled;

/// The stored pipeline format this release writes.
pub const PIPELINE_FORMAT: u64 = 2;

/// The format of the scheduler state in checkpoints this release writes.
pub const SCHEDULER_FORMAT: u64 = 3;

/// Why a stored pipeline cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// Written by a newer orchestra.
    #[error(
        "it was stored by a newer orchestra (pipeline format {pipeline}, scheduler format \
         {scheduler}; this one reads up to {PIPELINE_FORMAT} and {SCHEDULER_FORMAT}); upgrade orchestra"
    )]
    TooNew {
        /// Its pipeline format.
        pipeline: u64,
        /// Its scheduler format.
        scheduler: u64,
    },
    /// Not a pipeline of any known format (a damaged database).
    #[error("it is not a stored pipeline")]
    Invalid(#[source] serde_json::Error),
}

#[derive(Serialize)]
struct Envelope<'a> {
    format: u64,
    scheduler_format: u64,
    /// The project root the session was made in: used only when the root a command finds
    /// (from the database's place) does not hold the pipeline.
    root: &'a Path,
    compiled: &'a Compiled,
}

/// The stored JSON of `compiled` (paths relative to its project root) and its hash.
pub(crate) fn stored_pipeline(compiled: &Compiled) -> Result<(String, String), StoredError> {
    let portable = portable(compiled);
    let text = serde_json::to_string(&Envelope {
        format: PIPELINE_FORMAT,
        scheduler_format: SCHEDULER_FORMAT,
        root: &compiled.project_root,
        compiled: &portable,
    })
    .map_err(StoredError::Invalid)?;
    Ok((text, hash_of(&portable)))
}

/// The hash stored with a session for a compiled pipeline: of its relative form, so the same
/// pipeline in a moved project has the same hash.
pub fn pipeline_hash(compiled: &Compiled) -> String {
    hash_of(&portable(compiled))
}

/// Reads a stored pipeline (of any known format) with its paths under `root` — or under the
/// root it was made in, when `root` does not hold the pipeline file and that one does (a
/// database shared by projects, used from another one).
pub(crate) fn load_pipeline(text: &str, root: &Path) -> Result<Compiled, StoredError> {
    let mut value: Value = serde_json::from_str(text).map_err(StoredError::Invalid)?;
    let format = value.get("format").and_then(Value::as_u64);
    let made_in = value
        .get("root")
        .and_then(Value::as_str)
        .map(std::path::PathBuf::from);
    let mut compiled: Compiled = match format {
        // Format 1: the bare compiled pipeline, absolute paths under its `project_root`.
        None => serde_json::from_value(value).map_err(StoredError::Invalid)?,
        Some(pipeline) => {
            let scheduler = value
                .get("scheduler_format")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            if pipeline > PIPELINE_FORMAT || scheduler > SCHEDULER_FORMAT {
                return Err(StoredError::TooNew {
                    pipeline,
                    scheduler,
                });
            }
            let compiled = value.get_mut("compiled").map(Value::take);
            serde_json::from_value(compiled.unwrap_or(Value::Null)).map_err(StoredError::Invalid)?
        }
    };
    let made_in = made_in.unwrap_or_else(|| compiled.project_root.clone());
    let mut there = compiled.clone();
    compiled.relocate(root);
    if !compiled.pipeline_path.exists() && made_in.is_absolute() && made_in != root {
        there.relocate(&made_in);
        if there.pipeline_path.exists() {
            return Ok(there);
        }
    }
    Ok(compiled)
}

/// The `git:` settings of the project a stored pipeline (of any known format) ran in; the
/// defaults when it cannot be read. Only they are decoded: the rest is skipped over.
pub(crate) fn git_config(text: &str) -> orchestra_spec::GitConfig {
    #[derive(serde::Deserialize)]
    struct Stored {
        // Format 2 and later: the compiled pipeline inside an envelope.
        compiled: Option<Resolved>,
        // Format 1: the compiled pipeline itself.
        project: Option<Project>,
    }
    #[derive(serde::Deserialize)]
    struct Resolved {
        project: Project,
    }
    #[derive(serde::Deserialize)]
    struct Project {
        #[serde(default)]
        git: orchestra_spec::GitConfig,
    }
    serde_json::from_str::<Stored>(text)
        .ok()
        .and_then(|s| s.compiled.map(|c| c.project).or(s.project))
        .map(|p| p.git)
        .unwrap_or_default()
}

/// `compiled` with its paths relative to the project root.
fn portable(compiled: &Compiled) -> Compiled {
    let mut c = compiled.clone();
    c.relocate(Path::new(""));
    c
}

/// FNV-1a (64 bit: enough to notice a changed pipeline) of the JSON of `compiled`.
fn hash_of(compiled: &Compiled) -> String {
    let mut digest = Fnv(0xcbf2_9ce4_8422_2325);
    // Writing to the digest cannot fail; a value that does not serialize hashes as empty.
    if serde_json::to_writer(&mut digest, compiled).is_err() {
        digest = Fnv(0);
    }
    format!("{:016x}", digest.0)
}

/// Hashes what is written to it, without keeping it.
struct Fnv(u64);

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_settings_are_read_from_either_format() {
        let v2 = r#"{"format":2,"scheduler_format":1,"compiled":{"name":"p","project":{"git":{"prefix":"ai/"}}}}"#;
        let v1 = r#"{"name":"p","project":{"git":{"prefix":"bots/"}}}"#;
        assert_eq!(git_config(v2).prefix, "ai/");
        assert_eq!(git_config(v1).prefix, "bots/");
        assert_eq!(
            git_config("not json").prefix,
            orchestra_spec::GitConfig::default().prefix
        );
    }
}
