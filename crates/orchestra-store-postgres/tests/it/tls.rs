//! TLS: `sslmode` and `sslrootcert` against a server with `ssl = on` and a certificate made
//! here (a test CA signs one for `db.test`), and against the plain test server.

use orchestra_store::{Store, StoreError};
use orchestra_store_postgres::testing::{ServerCert, TestServer, server, start_tls_server};
use orchestra_store_postgres::{PgEnv, PgOptions, PgStore};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA's certificate (PEM) and the issuer that signs with its key.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("a key pair");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params
        .self_signed(&key)
        .expect("a self-signed CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

/// The server's certificate for `db.test`, signed by `issuer`, with the CA's after it.
fn server_cert(ca_pem: &str, issuer: &Issuer<'_, KeyPair>) -> ServerCert {
    let key = KeyPair::generate().expect("a key pair");
    let mut params = CertificateParams::new(vec!["db.test".to_owned()]).expect("server parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "db.test");
    let cert = params
        .signed_by(&key, issuer)
        .expect("a certificate signed by the CA");
    ServerCert {
        chain: format!("{}{ca_pem}", cert.pem()),
        key: key.serialize_pem(),
    }
}

fn options() -> PgOptions {
    PgOptions {
        password: None,
        env: PgEnv::default(),
        ..PgOptions::default()
    }
}

/// The URL of the TLS server's database `postgres`, named `host` (reached at 127.0.0.1).
fn url(server: &TestServer, host: &str, params: &str) -> String {
    format!(
        "postgres://postgres:{}@{host}:{}/postgres?hostaddr=127.0.0.1{params}",
        server.password, server.port
    )
}

fn reason(e: StoreError, password: &str) -> String {
    let text = e.to_string();
    assert!(!text.contains(password), "{text}");
    match e {
        StoreError::Unreachable { reason, .. } => reason,
        other => panic!("not an unreachable database: {other:?}"),
    }
}

fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
    PgStore::connect_with(url, options)
}

#[test]
fn every_sslmode_against_a_server_that_takes_only_tls() {
    let (ca_pem, issuer) = ca("orchestra test CA");
    let (other_ca_pem, _) = ca("another CA");
    let server = start_tls_server(&server_cert(&ca_pem, &issuer)).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let (root, other_root) = (
        write("root.pem", &ca_pem),
        write("other.pem", &other_ca_pem),
    );
    let pw = &server.password;

    // Without TLS the server refuses (its pg_hba.conf has only `hostssl`): the modes below that
    // connect did speak TLS.
    let e = connect(&url(&server, "db.test", "&sslmode=disable"), options()).unwrap_err();
    let why = reason(e, pw);
    assert!(why.contains("no encryption"), "{why}");

    // `prefer` (the default) and `require` encrypt without checking the certificate.
    for params in ["", "&sslmode=prefer", "&sslmode=require"] {
        let mut s = connect(&url(&server, "some.name", params), options())
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        s.create_session(&orchestra_store::conformance::new_session(
            &format!("tls{}", params.len()),
            1,
        ))
        .unwrap();
    }

    // `verify-full`: the right root and the right name.
    let full = format!("&sslmode=verify-full&sslrootcert={root}");
    let s = connect(&url(&server, "db.test", &full), options()).unwrap();
    assert!(s.session("tls0").unwrap().is_some());
    drop(s);
    // The right root, another name: refused, naming the host and the mode.
    let e = connect(&url(&server, "other.test", &full), options()).unwrap_err();
    let why = reason(e, pw);
    assert!(
        why.starts_with(&format!(
            "the TLS handshake with other.test:{} failed (sslmode=verify-full): ",
            server.port
        )) && why.contains("not valid for name"),
        "{why}"
    );
    // `verify-ca` does not check the name; `require` with a root checks the chain (libpq).
    for mode in ["verify-ca", "require"] {
        let params = format!("&sslmode={mode}&sslrootcert={root}");
        connect(&url(&server, "other.test", &params), options())
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
    // Another CA's root: refused by every checking mode.
    for mode in ["verify-full", "verify-ca", "require"] {
        let params = format!("&sslmode={mode}&sslrootcert={other_root}");
        let e = connect(&url(&server, "db.test", &params), options()).unwrap_err();
        let why = reason(e, pw);
        assert!(
            why.contains(&format!("(sslmode={mode})")) && why.contains("UnknownIssuer"),
            "{mode}: {why}"
        );
    }
    // A root file that is not there, or holds no certificate.
    let missing = dir.path().join("missing.pem");
    let e = connect(
        &url(
            &server,
            "db.test",
            &format!("&sslmode=verify-full&sslrootcert={}", missing.display()),
        ),
        options(),
    )
    .unwrap_err();
    let why = reason(e, pw);
    assert!(
        why.starts_with(&format!(
            "cannot read the root certificates in {} (sslrootcert): ",
            missing.display()
        )),
        "{why}"
    );
    let empty = write("empty.pem", "not a certificate\n");
    let e = connect(
        &url(
            &server,
            "db.test",
            &format!("&sslmode=verify-ca&sslrootcert={empty}"),
        ),
        options(),
    )
    .unwrap_err();
    assert!(reason(e, pw).ends_with("no PEM certificate in it"));

    // The same from the PG* variables: everything but the host address.
    let env = PgEnv {
        host: Some("db.test".into()),
        port: Some(server.port.to_string()),
        user: Some("postgres".into()),
        dbname: Some("postgres".into()),
        sslmode: Some("verify-full".into()),
        sslrootcert: Some(root.clone()),
    };
    let s = connect(
        "postgres://?hostaddr=127.0.0.1",
        PgOptions {
            password: Some(pw.clone()),
            env: env.clone(),
            ..options()
        },
    )
    .unwrap();
    assert!(s.session("tls0").unwrap().is_some());
    let e = connect(
        "postgres://?hostaddr=127.0.0.1",
        PgOptions {
            password: Some(pw.clone()),
            env: PgEnv {
                sslrootcert: Some(other_root),
                ..env
            },
            ..options()
        },
    )
    .unwrap_err();
    assert!(reason(e, pw).contains("UnknownIssuer"));
}

#[test]
fn sslmode_require_to_a_server_without_tls_is_refused_clearly() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}?sslmode=require", server.url("postgres"));
    let e = connect(&url, options()).unwrap_err();
    assert_eq!(
        reason(e, &server.password),
        format!(
            "the server at 127.0.0.1:{} does not accept TLS connections (sslmode=require); \
             turn ssl on at the server, or give sslmode=prefer or disable",
            server.port
        )
    );
    assert_eq!(
        connect(&url, options()).unwrap_err().exit_class(),
        orchestra_store::ErrorClass::BadDatabase
    );
}
