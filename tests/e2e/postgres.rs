//! Sessions on PostgreSQL (a real server, see `orchestra_store_postgres::testing`):
//! `pipelines/pr-review.yaml` runs there, and other processes read it with `status`, `show`,
//! `report`, `replay`, `resume`, `attach` and `cleanup` just as they read a SQLite file: the database
//! chosen by `--db`, `ORCHESTRA_DATABASE` or `database:`, the password from the URL or
//! `PGPASSWORD` and never printed.

use std::process::Stdio;

use orchestra_store_postgres::testing::server;

use super::common::Run;
use super::readme::{Repo, session_of};
use super::show::redact;

/// Runs `orchestra ARGS` in `repo` with extra environment variables.
fn orchestra_env(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = repo.command(args);
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The step listing of `show ID` (what `show.rs` snapshots), redacted.
fn steps(show: &Run, id: &str) -> String {
    let text: String = show
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("state at checkpoint"))
        .map(|l| format!("{l}\n"))
        .collect();
    redact(&text, id)
}

#[test]
fn pr_review_runs_on_postgres_and_other_processes_read_it() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let with_pw = server.url(&db);
    let no_pw = server.url_without_password(&db);
    let pw = server.password.as_str();
    let repo = Repo::new();
    let clean = |run: &Run| {
        assert!(
            !run.stdout.contains(pw) && !run.stderr.contains(pw),
            "the password is printed: {}",
            run.transcript()
        );
    };

    // The same pipeline on SQLite (the project's default database), for comparison.
    let lite = repo.orchestra(&["run", "pipelines/pr-review.yaml"], "");
    assert_eq!(lite.code, 0, "{}", lite.transcript());
    let lite_id = session_of(&lite).unwrap();

    // `--db URL`, the password from PGPASSWORD.
    let run = orchestra_env(
        &repo,
        &["run", "pipelines/pr-review.yaml", "--db", &no_pw],
        &[("PGPASSWORD", pw)],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    clean(&run);
    let id = session_of(&run).unwrap();
    assert_ne!(id, lite_id);

    // `status` from another process, the database from ORCHESTRA_DATABASE (password in it).
    let status = orchestra_env(
        &repo,
        &["status", "--json"],
        &[("ORCHESTRA_DATABASE", &with_pw)],
    );
    assert_eq!(status.code, 0, "{}", status.transcript());
    clean(&status);
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the PostgreSQL session: {rows:?}");
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["status"], "completed");
    let detail = orchestra_env(&repo, &["status", &id], &[("ORCHESTRA_DATABASE", &with_pw)]);
    assert_eq!(detail.code, 0, "{}", detail.transcript());
    assert!(detail.stdout.contains("completed"), "{}", detail.stdout);

    // `report` reads it too: `--db URL`, then ORCHESTRA_DATABASE (without it, the project's
    // SQLite file has no such session).
    let report = orchestra_env(
        &repo,
        &["report", "--db", &no_pw, &id, "--format", "json"],
        &[("PGPASSWORD", pw)],
    );
    assert_eq!(report.code, 0, "{}", report.transcript());
    clean(&report);
    let json: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(json["session"]["id"], id.as_str());
    assert_eq!(json["session"]["status"], "completed");
    let critic_runs = json["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "critic")
        .map(|n| n["runs"].clone());
    assert_eq!(critic_runs, Some(serde_json::json!(2)), "{json}");
    let report = orchestra_env(&repo, &["report", &id], &[("ORCHESTRA_DATABASE", &with_pw)]);
    assert_eq!(report.code, 0, "{}", report.transcript());
    clean(&report);
    assert!(report.stdout.contains(&id), "{}", report.stdout);
    assert!(report.stdout.contains("```mermaid"), "{}", report.stdout);
    let elsewhere = orchestra_env(&repo, &["report", &id], &[]);
    assert_ne!(elsewhere.code, 0, "{}", elsewhere.transcript());

    // `show` names it by its tail; `database:` of orchestra.yaml points at the server.
    let yaml = std::fs::read_to_string(repo.root.join("orchestra.yaml")).unwrap();
    let yaml = yaml.replace(
        "database: .orchestra/orchestra.db",
        &format!("database: {no_pw}"),
    );
    std::fs::write(repo.root.join("orchestra.yaml"), yaml).unwrap();
    let tail = id.rsplit('-').next().unwrap();
    let show = orchestra_env(&repo, &["show", tail], &[("PGPASSWORD", pw)]);
    assert_eq!(show.code, 0, "{}", show.transcript());
    clean(&show);
    assert!(
        show.stdout.contains("\"review\": \"## Summary"),
        "{}",
        show.stdout
    );
    let critic = orchestra_env(
        &repo,
        &["show", &id, "--node", "critic"],
        &[("PGPASSWORD", pw)],
    );
    assert_eq!(critic.code, 0, "{}", critic.transcript());
    assert!(
        critic
            .stdout
            .contains("node critic: 2 runs up to checkpoint 5\n"),
        "{}",
        critic.stdout
    );
    // The same steps, routing, tokens and tool calls as on SQLite.
    let lite_show = orchestra_env(
        &repo,
        &["show", &lite_id, "--db", ".orchestra/orchestra.db"],
        &[],
    );
    assert_eq!(lite_show.code, 0, "{}", lite_show.transcript());
    assert_eq!(steps(&show, &id), steps(&lite_show, &lite_id));

    // `attach` and `resume` of a completed session say so, as on SQLite.
    let attach = orchestra_env(&repo, &["attach", &id], &[("PGPASSWORD", pw)]);
    assert_eq!(attach.code, 2, "{}", attach.transcript());
    assert!(attach.stderr.contains("is completed"), "{}", attach.stderr);
    let resume = orchestra_env(&repo, &["resume", &id], &[("PGPASSWORD", pw)]);
    let lite_resume = orchestra_env(
        &repo,
        &["resume", &lite_id, "--db", ".orchestra/orchestra.db"],
        &[],
    );
    assert_eq!(resume.code, lite_resume.code, "{}", resume.transcript());
    assert_eq!(
        resume.stdout.replace(&id, "ID"),
        lite_resume.stdout.replace(&lite_id, "ID")
    );

    // `replay` forks it on the server and runs the fork to the end.
    let replay = orchestra_env(
        &repo,
        &["replay", &id, "--checkpoint", "3"],
        &[("PGPASSWORD", pw)],
    );
    assert_eq!(replay.code, 0, "{}", replay.transcript());
    clean(&replay);
    let fork = session_of(&replay).unwrap();
    let status = orchestra_env(&repo, &["status", "--json"], &[("PGPASSWORD", pw)]);
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let forked = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == fork.as_str())
        .unwrap_or_else(|| panic!("the fork is listed: {rows}"));
    assert_eq!(forked["status"], "completed");
    assert_eq!(forked["parent_session"], id.as_str());

    // `cleanup` lists what it would remove from the server's sessions.
    let cleanup = orchestra_env(&repo, &["cleanup", "--dry-run"], &[("PGPASSWORD", pw)]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.transcript());
    clean(&cleanup);
}

#[test]
fn connection_problems_are_clear_and_never_show_the_password() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let repo = Repo::new();
    let pw = server.password.as_str();

    // A wrong password: exit 2, the user and the server named, the password not.
    let wrong = server.url(&db).replace(pw, "hunter2-wrong");
    let run = orchestra_env(&repo, &["status", "--db", &wrong], &[]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!(
            "authentication failed for user `postgres` at 127.0.0.1:{}",
            server.port
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("postgres://postgres:***@127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2-wrong"), "{}", run.stderr);

    // No password at all.
    let none = orchestra_env(
        &repo,
        &["status", "--db", &server.url_without_password(&db)],
        &[],
    );
    assert_eq!(none.code, 2, "{}", none.transcript());
    assert!(none.stderr.contains("in PGPASSWORD"), "{}", none.stderr);

    // A database that does not exist.
    let missing = orchestra_env(
        &repo,
        &[
            "run",
            "pipelines/pr-review.yaml",
            "--db",
            &server.url("nowhere"),
        ],
        &[],
    );
    assert_eq!(missing.code, 2, "{}", missing.transcript());
    assert!(
        missing
            .stderr
            .contains("database \"nowhere\" does not exist"),
        "{}",
        missing.stderr
    );
    assert!(!missing.stderr.contains(pw), "{}", missing.stderr);

    // The value of ORCHESTRA_DATABASE is not shown by --help either.
    let help = orchestra_env(
        &repo,
        &["status", "--help"],
        &[("ORCHESTRA_DATABASE", &server.url(&db))],
    );
    assert_eq!(help.code, 0, "{}", help.transcript());
    assert!(
        help.stdout.contains("ORCHESTRA_DATABASE"),
        "{}",
        help.stdout
    );
    assert!(!help.stdout.contains(pw), "{}", help.stdout);
    // It names the libpq variables the URL is completed from, and the pool's size.
    for word in ["PGHOST", "PGSSLROOTCERT", "pool_size"] {
        assert!(help.stdout.contains(word), "{word}: {}", help.stdout);
    }

    // A pool size that is no number of connections.
    let pool = orchestra_env(
        &repo,
        &[
            "status",
            "--db",
            &format!("{}?pool_size=0", server.url(&db)),
        ],
        &[],
    );
    assert_eq!(pool.code, 2, "{}", pool.transcript());
    assert!(
        pool.stderr
            .contains("invalid pool_size `0` (from the URL): give a number of connections"),
        "{}",
        pool.stderr
    );
    assert!(!pool.stderr.contains(pw), "{}", pool.stderr);
}

#[test]
fn the_mcp_server_runs_sessions_on_postgres_without_the_url_on_command_lines() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let url = server.url(&db);
    let pw = server.password.as_str();
    let repo = Repo::new();
    let mut cmd = repo.command(&["mcp"]);
    cmd.env("ORCHESTRA_DATABASE", &url);
    let mut mcp = super::mcp_server::Server::start_as(cmd);
    let started = mcp.call(
        "run_pipeline",
        serde_json::json!({"pipeline": "pipelines/pr-review.yaml"}),
    );
    assert_eq!(started["isError"], false, "{started}");
    let out = &started["structuredContent"];
    let id = out["session"].as_str().unwrap().to_owned();
    // The drive's command line does not carry the URL (it gets it in its environment).
    let pid = out["pid"].as_u64().unwrap();
    if let Ok(argv) = std::fs::read(format!("/proc/{pid}/cmdline")) {
        let argv = String::from_utf8_lossy(&argv);
        assert!(
            !argv.contains(pw) && !argv.contains("postgres://"),
            "{argv}"
        );
    }
    // Its log and events are the project's, not somewhere a URL would make of a path.
    let log = out["log"].as_str().unwrap();
    assert!(log.ends_with(&format!(".orchestra/mcp/{id}.log")), "{out}");
    let done = super::common::wait_until("the session to complete on the server", || {
        let status = orchestra_env(
            &repo,
            &["status", &id, "--json"],
            &[("ORCHESTRA_DATABASE", &url)],
        );
        assert_eq!(status.code, 0, "{}", status.transcript());
        let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        (v["status"] != "running" && v["status"] != "created").then_some(v)
    });
    assert_eq!(done["status"], "completed", "{done}");
    let listed = mcp.call("list_sessions", serde_json::json!({}));
    assert_eq!(listed["isError"], false, "{listed}");
    assert_eq!(
        listed["structuredContent"]["sessions"][0]["id"],
        id.as_str(),
        "{listed}"
    );
    let text = std::fs::read_to_string(repo.root.join(log)).unwrap_or_default()
        + &std::fs::read_to_string(repo.root.join(out["events"].as_str().unwrap()))
            .unwrap_or_default();
    assert!(!text.contains(pw), "the password is in the drive's output");
    mcp.close();
}

#[test]
fn the_pg_variables_name_the_database_as_for_every_postgresql_tool() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let repo = Repo::new();
    let port = server.port.to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGDATABASE", db.as_str()),
        ("PGPASSWORD", server.password.as_str()),
    ];
    // `postgres://` alone: everything from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD.
    let run = orchestra_env(
        &repo,
        &["run", "pipelines/pr-review.yaml", "--db", "postgres://"],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stdout.contains(&server.password), "{}", run.stdout);
    let id = session_of(&run).unwrap();
    // Another process finds it by the full URL: it is in that database.
    let status = orchestra_env(
        &repo,
        &["status", &id, "--json", "--db", &server.url(&db)],
        &[],
    );
    assert_eq!(status.code, 0, "{}", status.transcript());
    assert!(status.stdout.contains("\"completed\""), "{}", status.stdout);

    // PGSSLMODE=require against a server without TLS: exit 2, and why.
    let mut tls_env = env.to_vec();
    tls_env.push(("PGSSLMODE", "require"));
    let refused = orchestra_env(&repo, &["status", "--db", "postgres://"], &tls_env);
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert!(
        refused.stderr.contains(&format!(
            "the server at 127.0.0.1:{port} does not accept TLS connections (sslmode=require)"
        )),
        "{}",
        refused.stderr
    );
    // A PGSSLMODE libpq does not know either.
    tls_env.pop();
    tls_env.push(("PGSSLMODE", "sometimes"));
    let bad = orchestra_env(&repo, &["status", "--db", "postgres://"], &tls_env);
    assert_eq!(bad.code, 2, "{}", bad.transcript());
    assert!(
        bad.stderr
            .contains("invalid sslmode `sometimes` (from PGSSLMODE)"),
        "{}",
        bad.stderr
    );
    assert!(!bad.stderr.contains(&server.password), "{}", bad.stderr);
}
