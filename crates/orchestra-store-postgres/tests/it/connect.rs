//! Connecting: migrations under concurrency, versions, errors that name the server and never
//! the password.

use std::thread;

use orchestra_store::{Store, StoreError};
use orchestra_store_postgres::testing::{fresh_database, server};
use orchestra_store_postgres::{PgEnv, PgOptions, PgStore, SCHEMA_VERSION};

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("the test server takes connections")
}

#[test]
fn processes_starting_together_migrate_a_new_database_once() {
    let url = fresh_database();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || PgStore::connect(&url).map(drop))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    let rows = admin(&url)
        .query(
            "SELECT version FROM orchestra.schema_version ORDER BY version",
            &[],
        )
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let want: Vec<i32> = (1..=i32::try_from(SCHEMA_VERSION).unwrap()).collect();
    assert_eq!(versions, want, "each migration applied once");
}

fn options() -> PgOptions {
    PgOptions {
        password: None,
        env: PgEnv::default(),
        ..PgOptions::default()
    }
}

fn unreachable(e: &StoreError) -> &str {
    match e {
        StoreError::Unreachable { reason, .. } => reason,
        other => panic!("not an unreachable database: {other:?}"),
    }
}

#[test]
fn a_database_of_a_newer_orchestra_is_refused() {
    let url = fresh_database();
    drop(PgStore::connect(&url).unwrap());
    admin(&url)
        .execute(
            "INSERT INTO orchestra.schema_version VALUES ($1, 0)",
            &[&i32::try_from(SCHEMA_VERSION + 1).unwrap()],
        )
        .unwrap();
    let e = PgStore::connect(&url).unwrap_err();
    assert!(
        matches!(e, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{e:?}"
    );
    assert!(!e.to_string().contains(&server().unwrap().password));
}

#[test]
fn another_programs_tables_in_the_orchestra_schema_are_refused() {
    let url = fresh_database();
    admin(&url)
        .batch_execute("CREATE SCHEMA orchestra; CREATE TABLE orchestra.sessions (x INT)")
        .unwrap();
    let e = PgStore::connect(&url).unwrap_err();
    assert!(
        e.to_string().contains("holds tables of another program"),
        "{e}"
    );
    // Nothing was created beside them.
    let n: i64 = admin(&url)
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'orchestra'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[test]
fn the_password_comes_from_the_url_or_the_option_and_is_never_shown() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    // In the URL.
    let mut s = PgStore::connect_with(&server.url(&db), options()).unwrap();
    assert!(!s.database().contains(&server.password), "{}", s.database());
    assert!(s.database().contains(":***@127.0.0.1:"), "{}", s.database());
    s.create_session(&orchestra_store::conformance::new_session("pw-url", 1))
        .unwrap();
    drop(s);
    // From PGPASSWORD (the CLI passes it as the option).
    let s = PgStore::connect_with(
        &server.url_without_password(&db),
        PgOptions {
            password: Some(server.password.clone()),
            ..options()
        },
    )
    .unwrap();
    assert!(s.session("pw-url").unwrap().is_some());
    // Missing or wrong: the error says so, names the user and the server, hides the password.
    let e = PgStore::connect_with(&server.url_without_password(&db), options()).unwrap_err();
    let reason = unreachable(&e);
    assert!(
        reason.contains("asks user `postgres` for a password"),
        "{e}"
    );
    let wrong = server
        .url(&db)
        .replace(&server.password, "not-the-password");
    let e = PgStore::connect_with(&wrong, options()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("authentication failed for user `postgres`"),
        "{msg}"
    );
    assert!(msg.contains(&format!("127.0.0.1:{}", server.port)), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert_eq!(e.exit_class(), orchestra_store::ErrorClass::BadDatabase);
}

#[test]
fn an_unknown_database_or_a_closed_port_is_named() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let e = PgStore::connect_with(&server.url("no_such_db"), options()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("database \"no_such_db\" does not exist"),
        "{msg}"
    );
    assert!(!msg.contains(&server.password), "{msg}");
    // A port nothing listens on (bound and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://me:hunter2@127.0.0.1:{port}/o");
    let e = PgStore::connect_with(&url, options()).unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        msg,
        format!(
            "cannot connect to database postgres://me:***@127.0.0.1:{port}/o: connection \
             refused by 127.0.0.1:{port}; is the PostgreSQL server running there?"
        )
    );
    let e =
        PgStore::connect_with("postgres://me:hunter2@127.0.0.1:notaport/o", options()).unwrap_err();
    assert!(
        e.to_string().contains("is not a valid PostgreSQL URL")
            && !e.to_string().contains("hunter2"),
        "{e}"
    );
}

#[test]
fn a_store_can_be_called_from_inside_a_tokio_runtime() {
    // The connection has its own thread, so a call from a thread that drives a runtime works
    // (rust-postgres's client, called there directly, panics: it runs a runtime of its own).
    let url = fresh_database();
    let mut s = PgStore::connect(&url).unwrap();
    s.create_session(&orchestra_store::conformance::new_session("rt", 1))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let got = rt.block_on(async move { s.list_sessions(&Default::default()).map(|l| l.len()) });
    assert_eq!(got.unwrap(), 1);
}

#[test]
fn a_lost_connection_is_reported_then_made_again() {
    let url = fresh_database();
    let mut s = PgStore::connect(&url).unwrap();
    s.create_session(&orchestra_store::conformance::new_session("lost", 1))
        .unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let killed: i64 = admin(&url)
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'orchestra'",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the store's one connection");
    // The call that finds the connection cut fails, naming the database without its password;
    // the next one connects again (the server may take a moment to tell the client).
    let mut failures = 0;
    let found = loop {
        match s.session("lost") {
            Ok(found) => break found,
            Err(e) => {
                // A lost connection is its own, transient error (a worker re-queues the
                // session rather than failing it).
                assert!(e.is_connection_lost(), "{e:?}");
                assert!(!e.to_string().contains(&server().unwrap().password), "{e}");
                failures += 1;
                assert!(failures < 3, "no new connection: {e}");
            }
        }
    };
    assert!(found.is_some());
}

#[test]
fn what_the_url_leaves_out_comes_from_the_pg_variables() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let env = PgEnv {
        host: Some("127.0.0.1".into()),
        port: Some(server.port.to_string()),
        user: Some("postgres".into()),
        dbname: Some(db.clone()),
        ..PgEnv::default()
    };
    let with_env = |env: PgEnv, password: Option<String>| PgOptions {
        password,
        env,
        ..options()
    };
    // Everything from the variables, the password from PGPASSWORD.
    let mut s = PgStore::connect_with(
        "postgres://",
        with_env(env.clone(), Some(server.password.clone())),
    )
    .unwrap();
    s.create_session(&orchestra_store::conformance::new_session("from-env", 1))
        .unwrap();
    drop(s);
    // The URL's parts win: its database, here one that is not there.
    let e = PgStore::connect_with(
        "postgres:///no_such_db",
        with_env(env.clone(), Some(server.password.clone())),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("\"no_such_db\" does not exist"),
        "{e}"
    );
    // The server's Unix socket (its directory as the `host` parameter; trusted, no password).
    let url = format!(
        "postgres:///{db}?host={}&port={}&user=postgres",
        server.dir.display(),
        server.port
    );
    let s = PgStore::connect_with(&url, with_env(PgEnv::default(), None)).unwrap();
    assert!(s.session("from-env").unwrap().is_some());
    drop(s);
    // PGHOST naming the socket directory, PGSSLMODE=require (no TLS on a socket, as libpq).
    let socket_env = PgEnv {
        host: Some(server.dir.display().to_string()),
        sslmode: Some("require".into()),
        ..env
    };
    let s = PgStore::connect_with("postgres://", with_env(socket_env, None)).unwrap();
    assert!(s.session("from-env").unwrap().is_some());
}
