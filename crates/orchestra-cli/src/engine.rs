//! What the session subcommands share: finding the database, the async runtime, Ctrl-C, the
//! progress printer and the mapping of session outcomes to exit codes.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestra_runtime::{
    DriveOptions, Engine, EventSink, Finish, Outcome, RestoreError, RuntimeError, error_chain,
};
use orchestra_spec::{
    Diagnostic, PROJECT_FILE, ProjectConfig, display_path, find_project_file, parse_yaml,
    read_source,
};
use orchestra_store::ErrorClass;
use serde_json::Value;
use tokio::sync::watch;

use crate::cli::Ctx;
use crate::cost::total_cost;
use crate::{diag, exit, store};

pub(crate) use crate::progress::Progress;

/// The environment variable that names the session database when `--db` does not.
pub(crate) const DATABASE_ENV: &str = "ORCHESTRA_DATABASE";

/// The database of the project around `dir`: `database:` of its `orchestra.yaml` (a path
/// relative to that file, or a URL), else `.orchestra/orchestra.db` under `dir`. An
/// `orchestra.yaml` that cannot be read is an error (it would silently point elsewhere than
/// `run` does).
pub(crate) fn database_for(dir: &Path) -> Result<PathBuf, Diagnostic> {
    if let Some(file) = find_project_file(dir) {
        let root = file.parent().unwrap_or(dir);
        let shown = display_path(&file, dir);
        let src = read_source(&file, shown)?;
        let project = parse_yaml::<ProjectConfig>(&src, "project")?;
        return Ok(project_database(root, &project.database));
    }
    Ok(dir.join(ProjectConfig::default().database))
}

/// The `database:` of a project's `orchestra.yaml`: a SQLite file relative to the project root,
/// a PostgreSQL URL, or the value as it is (a database of another kind, refused when it is
/// opened).
pub(crate) fn project_database(root: &Path, database: &str) -> PathBuf {
    match store::locate(database.as_ref(), root) {
        Ok(location) => location.value(),
        Err(_) => PathBuf::from(database),
    }
}

/// The database `db` names (a path or URL): the SQLite file or the PostgreSQL URL; the reason
/// it names none printed, as an exit code.
pub(crate) fn locate_db(db: &Path) -> io::Result<Result<PathBuf, u8>> {
    locate_db_to(&mut io::stderr().lock(), db)
}

/// [`locate_db`], the reason written to `err`.
pub(crate) fn locate_db_to(err: &mut dyn Write, db: &Path) -> io::Result<Result<PathBuf, u8>> {
    match store::locate(db.as_os_str(), Path::new("")) {
        Ok(location) => Ok(Ok(location.value())),
        Err(e) => store::report_to(err, &e).map(Err),
    }
}

/// The database for commands that name or list sessions: `--db`, else the project's around the
/// current directory; or the exit code to stop with (the problem already printed).
pub(crate) fn db_path(db: Option<PathBuf>, ctx: &Ctx) -> io::Result<Result<PathBuf, u8>> {
    db_path_to(&mut io::stderr().lock(), db, ctx)
}

/// [`db_path`], the problem written to `err`.
pub(crate) fn db_path_to(
    err: &mut dyn Write,
    db: Option<PathBuf>,
    ctx: &Ctx,
) -> io::Result<Result<PathBuf, u8>> {
    if let Some(db) = db {
        return locate_db_to(err, &db);
    }
    match database_for(&ctx.cwd) {
        Ok(db) => locate_db_to(err, &db),
        Err(d) => {
            let mut err = err;
            diag::print(&mut err, &[d])?;
            writeln!(
                err,
                "error: cannot tell where the session database is: `{PROJECT_FILE}` is invalid"
            )?;
            Ok(Err(exit::BAD_INPUT))
        }
    }
}

/// [`db_path`] for commands that act on an existing session: a database file that does not
/// exist is bad input (rather than an empty database created on the way to "no such session").
/// A database on a server is what the server says it is.
pub(crate) fn session_db(db: Option<PathBuf>, ctx: &Ctx) -> io::Result<Result<PathBuf, u8>> {
    session_db_to(&mut io::stderr().lock(), db, ctx)
}

/// [`session_db`], the problem written to `err`.
pub(crate) fn session_db_to(
    err: &mut dyn Write,
    db: Option<PathBuf>,
    ctx: &Ctx,
) -> io::Result<Result<PathBuf, u8>> {
    let db = match db_path_to(err, db, ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(Err(code)),
    };
    if !store::is_server(&db) && !db.exists() {
        writeln!(
            err,
            "error: there is no session database at {}; no session ran with it yet (give another with --db PATH)",
            display_path(&db, &ctx.cwd).display()
        )?;
        return Ok(Err(exit::BAD_INPUT));
    }
    Ok(Ok(db))
}

/// ` --db PATH` when commands run in `cwd` would not find `db` by themselves (it was given with
/// `--db`, or belongs to a project elsewhere), else nothing. Appended to the commands an outcome
/// suggests, so they work as printed. A URL is printed without its password (which the
/// command then takes from `PGPASSWORD`).
pub(crate) fn db_flag(db: &Path, cwd: &Path) -> String {
    if store::is_server(db) {
        let found = database_for(cwd).is_ok_and(|found| found == db);
        let from_env = std::env::var_os(DATABASE_ENV).is_some_and(|v| v == db.as_os_str());
        if found || from_env {
            return String::new();
        }
        let url = orchestra_store_postgres::without_password(&db.to_string_lossy());
        return format!(" --db '{}'", url.replace('\'', r"'\''"));
    }
    let abs = |p: &Path| {
        let p = cwd.join(p);
        std::fs::canonicalize(&p).unwrap_or(p)
    };
    if database_for(cwd).is_ok_and(|found| abs(&found) == abs(db)) {
        return String::new();
    }
    let shown = display_path(&abs(db), &abs(cwd)).display().to_string();
    let plain = !shown.is_empty()
        && shown
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-+@%=:,".contains(c));
    if plain {
        format!(" --db {shown}")
    } else {
        format!(" --db '{}'", shown.replace('\'', r"'\''"))
    }
}

/// The project root of commands run in `cwd`: the directory of the `orchestra.yaml` found
/// upward from it, else `cwd` itself. Sessions store their paths relative to it.
pub(crate) fn project_root(cwd: &Path) -> PathBuf {
    find_project_file(cwd)
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| cwd.to_path_buf())
}

/// The project root of the sessions in the database at `db`: the project the database lies in
/// (an `orchestra.yaml` upward from it, or the directory holding its `.orchestra/`), else the
/// project of `cwd`. Commands that name sessions work from anywhere with `--db`.
pub(crate) fn sessions_root(db: &Path, cwd: &Path) -> PathBuf {
    if store::is_server(db) {
        // A database on a server lies in no project: the sessions are the current one's.
        return project_root(cwd);
    }
    let db = cwd.join(db);
    let dir = db.parent().unwrap_or(cwd);
    if let Some(file) = find_project_file(dir) {
        return file.parent().unwrap_or(dir).to_path_buf();
    }
    match dir.file_name() {
        Some(name) if name == ".orchestra" => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => project_root(cwd),
    }
}

/// A tokio runtime on the calling thread. Agents wait on models, tools and the store (which has
/// a thread of its own); blocking work goes to blocking threads (git, tools, executable
/// conditions). One thread keeps a run's memory small: no worker stacks or per-thread heaps.
pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A cancel flag set by the first Ctrl-C (the second one exits at once).
pub(crate) fn ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = writeln!(
                io::stderr(),
                "\ninterrupted: finishing the checkpoint; Ctrl-C again to quit at once"
            );
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                // Programs the run started (tools, CLI agents, conditions) go with it.
                orchestra_process::kill_all();
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
    rx
}

/// An environment variable, unless it is unset or empty.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Why the pipeline's providers cannot be set up here (an API key that is not set, a
/// responses file that cannot be read): checked before a session starts or resumes, so a
/// configuration problem is bad input (exit 2) and leaves no half-begun session behind.
pub(crate) fn providers_problem(compiled: &orchestra_graph::Compiled) -> Option<String> {
    orchestra_runtime::check_providers(compiled, &env_var)
        .err()
        .map(|e| e.to_string())
}

/// Drive options for the CLI: real environment, progress printed to stderr.
pub(crate) fn drive_options(
    events: Arc<dyn EventSink>,
    stream: bool,
    cancel: watch::Receiver<bool>,
) -> DriveOptions {
    DriveOptions {
        stream,
        events,
        cancel,
        env: Arc::new(env_var),
        tools: orchestra_tools::Registry::new(),
        conditions: HashMap::new(),
        retry_base: std::time::Duration::from_millis(500),
        limits: orchestra_runtime::LimitOverrides::default(),
        human: None,
    }
}

/// Milliseconds as people read them (`orchestra_spec::fmt_duration`).
pub(crate) fn secs(ms: u64) -> String {
    orchestra_spec::fmt_duration(std::time::Duration::from_millis(ms))
}

/// "1 step", "3 steps".
pub(crate) fn steps(n: u64) -> String {
    if n == 1 {
        "1 step".to_owned()
    } else {
        format!("{n} steps")
    }
}

/// Prints how a drive ended (to stdout, or to stderr when `--events -` has stdout) and returns
/// the exit code. The commands it suggests name `db` when they would not find it by themselves.
pub(crate) fn report_outcome(
    out: &Outcome,
    elapsed_ms: u64,
    db: &Path,
    to_stderr: bool,
) -> io::Result<u8> {
    let mut w: Box<dyn Write> = if to_stderr {
        Box::new(io::stderr().lock())
    } else {
        Box::new(io::stdout().lock())
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let db = db_flag(db, &cwd);
    let summary = format!(
        "{}, {}, {}, {}",
        steps(out.steps),
        crate::summary::tokens(out.tokens, out.inherited_tokens),
        total_cost(&out.cost),
        secs(elapsed_ms)
    );
    match &out.finish {
        Finish::Completed { warnings } => {
            writeln!(w, "completed: {summary}")?;
            if !warnings.is_empty() {
                writeln!(w, "with {} warning(s) (see above)", warnings.len())?;
            }
            for p in &out.outputs {
                writeln!(w, "wrote {}", display_path(p, &cwd).display())?;
            }
        }
        Finish::Failed { error } => {
            writeln!(w, "failed: {error}")?;
            writeln!(
                w,
                "({summary}; fix the cause, then `orchestra resume {}{db}`)",
                out.session
            )?;
        }
        Finish::Fail { .. } => {
            writeln!(w, "failed: {}", out.finish.note().unwrap_or_default())?;
            writeln!(w, "({summary}; the pipeline ended the session as failed)")?;
        }
        Finish::Stopped { limit } => {
            writeln!(w, "stopped: {limit} ({summary})")?;
            if limit.plain_resume_continues() {
                writeln!(w, "(to go on: `orchestra resume {}{db}`)", out.session,)?;
            } else {
                writeln!(
                    w,
                    "(to go on, raise the limit: `orchestra resume {}{db} {} N`)",
                    out.session,
                    limit.flag()
                )?;
            }
        }
        Finish::Paused { node, reason } => {
            writeln!(w, "paused at `{node}`: {reason}")?;
            writeln!(w, "attach with: orchestra attach {}{db}", out.session)?;
        }
        Finish::Interrupted => {
            writeln!(
                w,
                "interrupted ({summary}); continue with `orchestra resume {}{db}`",
                out.session
            )?;
        }
    }
    let completed = matches!(out.finish, Finish::Completed { .. });
    for b in &out.branches {
        writeln!(w, "{}", crate::summary::branch_line(b, completed, &cwd))?;
    }
    writeln!(w, "session {}", out.session)?;
    Ok(exit::of_status(out.finish.status()))
}

/// Prints a runtime error with its causes and returns its exit code.
pub(crate) fn report_error(e: &RuntimeError) -> io::Result<u8> {
    report_error_to(&mut io::stderr().lock(), e)
}

/// [`report_error`] to `w`.
pub(crate) fn report_error_to(w: &mut dyn Write, e: &RuntimeError) -> io::Result<u8> {
    if let RuntimeError::Edit {
        session,
        step,
        errors,
    } = e
    {
        // One line per reason: each names its agent or field.
        for reason in errors {
            writeln!(w, "error: {reason}")?;
        }
        writeln!(
            w,
            "error: session `{session}` cannot go on from checkpoint {step} with this edit; nothing was changed"
        )?;
        return Ok(error_code(e));
    }
    writeln!(w, "error: {}", error_chain(e))?;
    Ok(error_code(e))
}

/// The exit code of a runtime error.
pub(crate) fn error_code(e: &RuntimeError) -> u8 {
    match e {
        RuntimeError::Edit { .. } => exit::BAD_INPUT,
        RuntimeError::Busy { .. } => exit::SESSION_BUSY,
        RuntimeError::Completed { .. } | RuntimeError::Stored { .. } => exit::BAD_INPUT,
        RuntimeError::Store(w) => match w.store_error().map(|s| s.exit_class()) {
            Some(ErrorClass::Usage | ErrorClass::BadDatabase) => exit::BAD_INPUT,
            Some(ErrorClass::Busy | ErrorClass::LeaseLost) => exit::SESSION_BUSY,
            _ => exit::INTERNAL,
        },
        RuntimeError::Restore(RestoreError::NoCheckpoint { .. }) => exit::BAD_INPUT,
        _ => exit::INTERNAL,
    }
}

/// Prints the outcome as one JSON line; the exit code is the same as for text.
pub(crate) async fn report_json(engine: &Engine, out: &Outcome) -> io::Result<u8> {
    let id = out.session.clone();
    let checkpoints = engine
        .store()
        .call(move |s| s.checkpoints(&id))
        .await
        .map_or(0, |c| c.len());
    let status = out.finish.status();
    let (status, code) = (status.as_str(), exit::of_status(status));
    let error = match &out.finish {
        Finish::Paused { reason, .. } => Some(reason.clone()),
        Finish::Interrupted => None,
        other => other.note(),
    };
    let messages = out
        .state
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    // Written straight from the state (a `json!` value would copy all of it first).
    #[derive(serde::Serialize)]
    struct Report<'a> {
        session: &'a str,
        status: &'a str,
        error: Option<String>,
        steps: u64,
        tokens: u64,
        /// The known cost in US dollars; `null` when no run's cost is known.
        cost_usd: Option<f64>,
        /// Whether `cost_usd` leaves out runs of models without a price.
        cost_partial: bool,
        inherited_tokens: u64,
        checkpoints: usize,
        messages: usize,
        outputs: &'a [PathBuf],
        branches: Vec<Value>,
        state: &'a orchestra_graph::state::State,
    }
    let report = Report {
        session: &out.session,
        status,
        error,
        steps: out.steps,
        tokens: out.tokens,
        cost_usd: out.cost.usd(),
        cost_partial: out.cost.is_partial(),
        inherited_tokens: out.inherited_tokens,
        checkpoints,
        messages,
        outputs: &out.outputs,
        branches: out
            .branches
            .iter()
            .map(|b| {
                let mut j = serde_json::json!({ "repo": b.repo, "branch": b.branch, "repo_path": b.repo_path });
                if let Some(url) = &b.url {
                    j["url"] = serde_json::json!(url);
                }
                j
            })
            .collect(),
        state: &out.state,
    };
    let mut w = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    serde_json::to_writer(&mut w, &report).map_err(io::Error::other)?;
    writeln!(w)?;
    w.flush()?;
    Ok(code)
}
