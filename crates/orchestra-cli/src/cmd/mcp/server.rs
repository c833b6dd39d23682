//! The tools of `orchestra mcp`. Each one does what its CLI command does, through the same
//! functions (`compile_pipeline`, `status`'s rows and detail, `show`'s views, `attach`'s
//! socket), and a failure is a tool error holding the text the CLI prints for it. (Tools return
//! `Result<Json<T>, String>` spelled out: `#[tool]` finds the output schema in that shape.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use orchestra_runtime::{Engine, RuntimeError};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;

use orchestra_runtime::interaction::{self, Drive, InteractionError, Launcher};

use super::types::{
    AnswerParams, Answered, CompileParams, Compiled, DiagnosticOut, Forked, ListParams,
    ReplayParams, ResumeParams, RunParams, SessionList, ShowOut, ShowParams, Started,
};
use crate::cli::Ctx;
use crate::cmd::{show, status};
use crate::engine::{
    db_path_to, project_database, providers_problem, report_error_to, session_db_to,
    sessions_root, locate_db_to,
};
use crate::load::{compile_pipeline, input_problem_to};

/// What a tool writes as the CLI would, as one text.
pub(super) fn text(buf: Vec<u8>) -> String {
    String::from_utf8_lossy(&buf).trim_end().to_owned()
}

/// An I/O failure of the server itself.
pub(super) fn io_failure(e: &std::io::Error) -> String {
    format!("error: {e}")
}

/// The MCP server: the directory it runs in and the database it was given.
#[derive(Debug, Clone)]
pub(crate) struct Orchestra {
    pub(super) ctx: Ctx,
    pub(super) db: Option<PathBuf>,
}

#[tool_router]
impl Orchestra {
    pub(crate) fn new(ctx: Ctx, db: Option<PathBuf>) -> Orchestra {
        Orchestra { ctx, db }
    }

    #[tool(
        description = "Compile a pipeline file: validate it and resolve every name it uses, as `orchestra compile` does. Returns its agents, inputs, warnings and the summary the CLI prints; an invalid pipeline is a tool error listing each problem at file:line:col.",
        annotations(read_only_hint = true)
    )]
    fn compile_pipeline(&self, Parameters(p): Parameters<CompileParams>) -> Result<Json<Compiled>, String> {
        let path = PathBuf::from(&p.pipeline);
        let compiled = match compile_pipeline(&path, p.provider.as_deref(), &self.ctx) {
            Ok(c) => c,
            Err(failure) => {
                let mut err = Vec::new();
                failure.write(&mut err, &path).map_err(|e| io_failure(&e))?;
                return Err(text(err));
            }
        };
        Ok(Json(Compiled {
            name: compiled.name.clone(),
            agents: compiled.agents.iter().map(|a| a.name.clone()).collect(),
            inputs: compiled.inputs.iter().map(|i| i.name.clone()).collect(),
            summary: crate::report::text(&compiled, &self.ctx.cwd),
            warnings: compiled.warnings.iter().map(diagnostic).collect(),
        }))
    }

    #[tool(
        description = "Start a run of a pipeline, detached: an `orchestra run` process of its own drives the session (it goes on when this server exits). Returns the session id as soon as the session started; follow it with show_session. A session that needs a human pauses at its interactive agent: answer it with answer_session."
    )]
    async fn run_pipeline(&self, Parameters(p): Parameters<RunParams>) -> Result<Json<Started>, String> {
        let path = PathBuf::from(&p.pipeline);
        let mut err = Vec::new();
        let compiled = match compile_pipeline(&path, p.provider.as_deref(), &self.ctx) {
            Ok(c) => c,
            Err(failure) => {
                failure.write(&mut err, &path).map_err(|e| io_failure(&e))?;
                return Err(text(err));
            }
        };
        let pairs: Vec<(String, String)> = p
            .inputs
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect();
        let given = compiled.inputs_with(&pairs);
        let problem = input_problem_to(&mut err, &compiled, &given, false);
        if problem.map_err(|e| io_failure(&e))?.is_some() {
            return Err(text(err));
        }
        if let Some(problem) = providers_problem(&compiled) {
            return Err(format!("error: {problem}"));
        }
        let db = self.db.clone().unwrap_or_else(|| {
            project_database(&compiled.project_root, &compiled.project.database)
        });
        let db = match locate_db_to(&mut err, &db).map_err(|e| io_failure(&e))? {
            Ok(db) => db,
            Err(_) => return Err(text(err)),
        };
        let id = orchestra_runtime::new_session_id();
        let mut args: Vec<OsString> = vec![
            "run".into(),
            path.into(),
            "--session-id".into(),
            id.clone().into(),
            "--db".into(),
            db.clone().into(),
        ];
        for (k, v) in pairs {
            args.push("--input".into());
            args.push(format!("{k}={v}").into());
        }
        if let Some(provider) = p.provider {
            args.extend(["--provider".into(), provider.into()]);
        }
        if let Some(name) = p.session_name {
            args.extend(["--session-name".into(), name.into()]);
        }
        limit_args(&mut args, p.max_steps, p.max_tokens, p.max_cost);
        let drive = Drive {
            command: "run",
            session: &id,
            args,
            stdin: None,
        };
        let launcher = self.launcher(&db)?;
        interaction::start(&launcher, drive)
            .await
            .map(Json)
            .map_err(|e| interaction_failure(&e))
    }

    #[tool(
        description = "List the sessions of the project's database, newest first, as `orchestra status` does: id, pipeline, status, steps, tokens, cost, parent session, and the note of a failed, stopped or paused one.",
        annotations(read_only_hint = true)
    )]
    async fn list_sessions(&self, Parameters(p): Parameters<ListParams>) -> Result<Json<SessionList>, String> {
        let mut err = Vec::new();
        let db = match db_path_to(&mut err, self.db.clone(), &self.ctx).map_err(|e| io_failure(&e))? {
            Ok(db) => db,
            Err(_) => return Err(text(err)),
        };
        if !crate::store::is_server(&db) && !db.exists() {
            return Ok(Json(SessionList {
                sessions: Vec::new(),
            }));
        }
        let engine = self.engine(&db)?;
        let rows = status::list_rows(&engine, p.limit.unwrap_or(50)).await;
        engine.close().await;
        let sessions = rows.map_err(|e| runtime_failure(&e))?;
        Ok(Json(SessionList { sessions }))
    }

    #[tool(
        description = "Show one session: its status (as `orchestra status ID --json`), the state at its last checkpoint (or the one given), the node runs and routing of its last steps (as `orchestra show ID --json`), the chat of the interactive agent it paused at, and the last events of the drives this server started.",
        annotations(read_only_hint = true)
    )]
    async fn show_session(&self, Parameters(p): Parameters<ShowParams>) -> Result<Json<ShowOut>, String> {
        let db = self.session_db()?;
        let engine = self.engine(&db)?;
        let launcher = self.launcher(&db)?;
        let out = show_session(&engine, &launcher, &p).await;
        engine.close().await;
        out.map(Json)
    }

    #[tool(
        description = "Resume an interrupted, failed, stopped or paused session from its last checkpoint, detached: an `orchestra resume` process of its own drives it. With `pipeline` it goes on with that (edited) pipeline file, with `set` it sets state fields first (as `--pipeline` and `--set`). Returns as soon as the drive started; follow it with show_session."
    )]
    async fn resume_session(&self, Parameters(p): Parameters<ResumeParams>) -> Result<Json<Started>, String> {
        let db = self.session_db()?;
        let id = self.find_session(&db, &p.session).await?;
        let mut args: Vec<OsString> = vec![
            "resume".into(),
            id.clone().into(),
            "--db".into(),
            db.clone().into(),
        ];
        if let Some(pipeline) = p.pipeline {
            args.extend(["--pipeline".into(), pipeline.into()]);
        }
        for (field, value) in &p.set {
            args.extend(["--set".into(), format!("{field}={value}").into()]);
        }
        limit_args(&mut args, p.max_steps, p.max_tokens, p.max_cost);
        let drive = Drive {
            command: "resume",
            session: &id,
            args,
            stdin: None,
        };
        let launcher = self.launcher(&db)?;
        interaction::start(&launcher, drive)
            .await
            .map(Json)
            .map_err(|e| interaction_failure(&e))
    }

    #[tool(
        description = "Fork a session at one of its checkpoints, as `orchestra replay` does: the new session starts with that checkpoint's state (edited with `set`, and going on with the pipeline file `pipeline` when given) and new branches and worktrees at its commits; the original is not changed. Unless `no_run`, the fork then runs detached (an `orchestra resume` process of its own). Returns the new session's id; follow it with show_session."
    )]
    async fn replay_session(&self, Parameters(p): Parameters<ReplayParams>) -> Result<Json<Forked>, String> {
        super::replay::replay(self, p).await.map(Json)
    }

    #[tool(
        description = "Answer a session's interactive agent with one line, as a human in `orchestra attach`: a message for the agent, or `/approve`, `/reject` or `/done` (with an optional comment) to end the chat. A paused session is resumed by a detached `orchestra resume` with the line (it pauses again when the agent next waits for a human); a session another process runs takes the line through its attach socket, and the agent's replies come back."
    )]
    async fn answer_session(&self, Parameters(p): Parameters<AnswerParams>) -> Result<Json<Answered>, String> {
        let db = self.session_db()?;
        let launcher = self.launcher(&db)?;
        let engine = self.engine(&db)?;
        let wait = p.wait_seconds.map_or(interaction::DEFAULT_WAIT, std::time::Duration::from_secs);
        let answered = interaction::answer(&engine, &launcher, &p.session, &p.text, wait).await;
        engine.close().await;
        answered.map(Json).map_err(|e| interaction_failure(&e))
    }
}

#[tool_handler(
    name = "orchestra",
    instructions = "Orchestra runs declarative multi-agent pipelines (YAML) with checkpoints. compile_pipeline checks a pipeline; run_pipeline starts one and returns the session id; show_session follows a session (status, state, node runs, a paused chat); answer_session gives a paused interactive agent a human line (/approve, /reject or a message); resume_session continues a stopped, failed or interrupted session (optionally with an edited pipeline or state); replay_session forks one at a checkpoint; list_sessions lists them."
)]
impl ServerHandler for Orchestra {}

impl Orchestra {
    /// The database of commands that name a session (it must exist), or the CLI's text.
    pub(super) fn session_db(&self) -> Result<PathBuf, String> {
        let mut err = Vec::new();
        match session_db_to(&mut err, self.db.clone(), &self.ctx).map_err(|e| io_failure(&e))? {
            Ok(db) => Ok(db),
            Err(_) => Err(text(err)),
        }
    }

    /// How this server starts drives of sessions of `db` (logs in `mcp/`).
    pub(super) fn launcher(&self, db: &Path) -> Result<Launcher, String> {
        crate::store::launcher(db, &self.ctx.cwd, "mcp", "orchestra mcp").map_err(|e| io_failure(&e))
    }

    /// An engine over `db` for the sessions of its project.
    pub(super) fn engine(&self, db: &Path) -> Result<Engine, String> {
        crate::store::engine(db, &sessions_root(db, &self.ctx.cwd)).map_err(|e| {
            let mut err = Vec::new();
            match crate::store::report_to(&mut err, &e) {
                Ok(_) => text(err),
                Err(e) => io_failure(&e),
            }
        })
    }

    /// The full id of the session `wanted` names (an id, or a unique prefix of it or of its
    /// tail), or the CLI's text for "no such session".
    pub(super) async fn find_session(&self, db: &Path, wanted: &str) -> Result<String, String> {
        let engine = self.engine(db)?;
        let key = wanted.to_owned();
        let found = engine.store().call(move |s| s.find_session(&key)).await;
        engine.close().await;
        found
            .map(|rec| rec.id)
            .map_err(|e| runtime_failure(&RuntimeError::Store(e)))
    }
}

/// The CLI's text for a runtime error.
pub(super) fn runtime_failure(e: &RuntimeError) -> String {
    let mut err = Vec::new();
    match report_error_to(&mut err, e) {
        Ok(_) => text(err),
        Err(e) => io_failure(&e),
    }
}

/// The CLI's text for a failed interaction: the drive's own output when it ended early.
pub(super) fn interaction_failure(e: &InteractionError) -> String {
    match e {
        InteractionError::Runtime(e) => runtime_failure(e),
        InteractionError::Ended { output, .. } => output.clone(),
        e => format!("error: {}", orchestra_runtime::error_chain(e)),
    }
}

/// `--max-steps N`, `--max-tokens N`, `--max-cost USD` for the limits given.
pub(super) fn limit_args(
    args: &mut Vec<OsString>,
    steps: Option<u32>,
    tokens: Option<u64>,
    cost: Option<f64>,
) {
    if let Some(n) = steps {
        args.extend(["--max-steps".into(), n.to_string().into()]);
    }
    if let Some(n) = tokens {
        args.extend(["--max-tokens".into(), n.to_string().into()]);
    }
    if let Some(usd) = cost {
        args.extend(["--max-cost".into(), usd.to_string().into()]);
    }
}

fn diagnostic(d: &orchestra_spec::Diagnostic) -> DiagnosticOut {
    DiagnosticOut {
        severity: if d.is_error() { "error" } else { "warning" }.to_owned(),
        message: d.message.clone(),
        location: d.location(),
        label: d.label.clone(),
        help: d.help.clone(),
        rendered: d.render(),
    }
}

/// `show_session` of the session `p` names.
async fn show_session(
    engine: &Engine,
    launcher: &Launcher,
    p: &ShowParams,
) -> Result<ShowOut, String> {
    let session = status::detail_json(engine, &p.session)
        .await
        .map_err(|e| runtime_failure(&e))?;
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let has_checkpoints = session["checkpoints"]
        .as_array()
        .is_some_and(|c| !c.is_empty());
    let (checkpoint, state, mut steps) = if has_checkpoints || p.checkpoint.is_some() {
        match show::shown(engine, &id, p.checkpoint, None).await {
            Ok(Ok(s)) => (Some(s.checkpoint), s.state, s.steps),
            Ok(Err(problem)) => return Err(format!("error: {problem}")),
            Err(e) => return Err(runtime_failure(&e)),
        }
    } else {
        (None, Value::Null, Vec::new())
    };
    let chat = if session["status"] == "paused" {
        let note = session["error"].as_str().unwrap_or_default();
        interaction::paused_chat(engine, &id, note)
            .await
            .map_err(|e| runtime_failure(&e))?
    } else {
        None
    };
    let keep = p.steps.unwrap_or(5);
    steps.drain(..steps.len().saturating_sub(keep));
    let logs = launcher.logs.as_path();
    let events = interaction::last_events(logs, &id, p.events.unwrap_or(20));
    Ok(ShowOut {
        session,
        checkpoint,
        state,
        steps,
        chat,
        events,
    })
}
