//! The `replay_session` tool: `orchestra replay` through MCP. The fork (state and worktrees at
//! the checkpoint, edited with `pipeline` and `set`) is made here, through the same engine
//! calls as the CLI; the new session then runs detached, as `orchestra resume NEW_ID` (what
//! `replay` does after forking), unless `no_run`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use orchestra_runtime::{Edit, Engine};

use orchestra_runtime::interaction::{self, Drive};

use super::server::{
    Orchestra, interaction_failure, io_failure, limit_args, runtime_failure, text,
};
use super::types::{Forked, ReplayParams};
use crate::engine::providers_problem;
use crate::load::compile_pipeline;

/// Forks the session `p` names at its checkpoint and, unless `p.no_run`, starts the fork.
pub(super) async fn replay(server: &Orchestra, p: ReplayParams) -> Result<Forked, String> {
    let edit = edit(server, p.pipeline.as_deref(), &p.set)?;
    let db = server.session_db()?;
    let engine = server.engine(&db)?;
    let forked = fork(&engine, &p, &edit).await;
    engine.close().await;
    let (id, parent, changes) = forked?;
    let mut out = Forked {
        session: id.clone(),
        parent,
        checkpoint: p.checkpoint,
        changes,
        started: None,
        next: format!("run it with resume_session {{\"session\": \"{id}\"}}"),
    };
    if p.no_run {
        return Ok(out);
    }
    let mut args: Vec<OsString> = vec![
        "resume".into(),
        id.clone().into(),
        "--db".into(),
        db.clone().into(),
    ];
    limit_args(&mut args, p.max_steps, p.max_tokens, p.max_cost);
    let drive = Drive {
        command: "resume",
        session: &id,
        args,
        stdin: None,
    };
    let launcher = server.launcher(&db)?;
    let started = interaction::start(&launcher, drive)
        .await
        .map_err(|e| interaction_failure(&e))?;
    out.next = started.next.clone();
    out.started = Some(started);
    Ok(out)
}

/// The edit `pipeline` and `set` ask for, as `--pipeline` and `--set` make it: the pipeline
/// compiled and its providers checked; or the CLI's text of what is wrong.
pub(super) fn edit(
    server: &Orchestra,
    pipeline: Option<&str>,
    set: &serde_json::Map<String, serde_json::Value>,
) -> Result<Edit, String> {
    let pipeline = match pipeline {
        None => None,
        Some(path) => {
            let path = PathBuf::from(path);
            match compile_pipeline(&path, None, &server.ctx) {
                Ok(c) => {
                    if let Some(problem) = providers_problem(&c) {
                        return Err(format!("error: {problem}"));
                    }
                    Some(Arc::new(c))
                }
                Err(failure) => {
                    let mut err = Vec::new();
                    failure.write(&mut err, &path).map_err(|e| io_failure(&e))?;
                    return Err(text(err));
                }
            }
        }
    };
    let set = set
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Edit { pipeline, set })
}

/// Checks and makes the fork: (its id, the parent's full id, what the edited pipeline changes).
async fn fork(
    engine: &Engine,
    p: &ReplayParams,
    edit: &Edit,
) -> Result<(String, String, Vec<String>), String> {
    let (rec, stored) = engine
        .session_pipeline(&p.session)
        .await
        .map_err(|e| runtime_failure(&e))?;
    // A fork that is to run needs its providers: checked before it is made, as the CLI does.
    if !p.no_run
        && edit.pipeline.is_none()
        && let Some(problem) = providers_problem(&stored)
    {
        return Err(format!("error: {problem}"));
    }
    let mut changes = Vec::new();
    if !edit.is_empty() {
        let check = engine
            .check_edit(&p.session, Some(p.checkpoint), edit)
            .await
            .map_err(|e| runtime_failure(&e))?;
        changes = check.diff.changes.iter().map(ToString::to_string).collect();
    }
    let id = engine
        .fork_edited(&p.session, p.checkpoint, edit)
        .await
        .map_err(|e| runtime_failure(&e))?;
    Ok((id, rec.id, changes))
}
