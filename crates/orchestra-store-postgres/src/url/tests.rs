//! The URL rules: masking passwords, and the configuration a URL and the `PG*` variables give.

use super::*;

#[test]
fn passwords_are_masked_wherever_they_are() {
    let cases = [
        (
            "postgres://me:s3cret@db.example:5433/o",
            "postgres://me:***@db.example:5433/o",
        ),
        ("postgres://me@db/o", "postgres://me@db/o"),
        ("postgresql://db/o", "postgresql://db/o"),
        (
            "postgres://me:p@ss/w?rd@db/o?sslmode=disable",
            "postgres://me:***@db/o?sslmode=disable",
        ),
        (
            "postgres://db/o?user=me&password=s3cret&application_name=x",
            "postgres://db/o?user=me&password=***&application_name=x",
        ),
        (
            "postgres://me:s3cret@db/o?PASSWORD=again",
            "postgres://me:***@db/o?PASSWORD=***",
        ),
    ];
    for (url, shown) in cases {
        let masked = mask_password(url);
        assert_eq!(masked, shown);
        assert!(!masked.contains("s3cret") && !masked.contains("ss/w?rd"));
    }
}

#[test]
fn passwords_can_be_removed() {
    assert_eq!(
        without_password("postgres://me:s3cret@db:5433/o?password=x&sslmode=disable"),
        "postgres://me@db:5433/o?sslmode=disable"
    );
    assert_eq!(
        without_password("postgres://db/o?password=x"),
        "postgres://db/o"
    );
    assert_eq!(without_password("postgres://me@db/o"), "postgres://me@db/o");
}

#[test]
fn postgres_urls_are_recognised_by_scheme() {
    assert!(is_postgres_url("postgres://db/o"));
    assert!(is_postgres_url("PostgreSQL://db/o"));
    assert!(!is_postgres_url("sqlite://o.db"));
    assert!(!is_postgres_url("postgres.db"));
}

#[test]
fn the_password_comes_from_the_url_before_the_environment() {
    let t = Duration::from_secs(3);
    let env = PgEnv::default();
    let c = |url, pw| config(url, pw, &env, t).unwrap().0;
    let c1 = c("postgres://me:url-pw@h:6000/o", Some("env-pw"));
    assert_eq!(c1.get_password(), Some(&b"url-pw"[..]));
    let c2 = c("postgres://me@h:6000/o", Some("env-pw"));
    assert_eq!(c2.get_password(), Some(&b"env-pw"[..]));
    assert_eq!(c2.get_connect_timeout(), Some(&t));
    assert_eq!(server(&c2), "h:6000");
    let c3 = c("postgres://me@h/o?connect_timeout=7", None);
    assert_eq!(c3.get_password(), None);
    assert_eq!(c3.get_connect_timeout(), Some(&Duration::from_secs(7)));
    assert_eq!(server(&c3), "h:5432");
}

#[test]
fn what_the_url_leaves_out_comes_from_the_pg_variables() {
    let env = PgEnv {
        host: Some("envhost".into()),
        port: Some("6543".into()),
        user: Some("envuser".into()),
        dbname: Some("envdb".into()),
        sslmode: Some("verify-full".into()),
        sslrootcert: Some("/env/root.crt".into()),
    };
    let t = Duration::from_secs(3);
    let (c, tls, _) = config("postgres://", None, &env, t).unwrap();
    assert_eq!(server(&c), "envhost:6543");
    assert_eq!(c.get_user(), Some("envuser"));
    assert_eq!(c.get_dbname(), Some("envdb"));
    assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Require);
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert_eq!(tls.root_cert.as_deref(), Some("/env/root.crt"));
    // The URL's parts win, each on its own.
    let url = "postgres://me@urlhost/urldb?sslmode=disable&sslrootcert=%2Furl%2Froot.crt";
    let (c, tls, _) = config(url, None, &env, t).unwrap();
    assert_eq!(server(&c), "urlhost:6543");
    assert_eq!((c.get_user(), c.get_dbname()), (Some("me"), Some("urldb")));
    assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Disable);
    assert_eq!(tls.mode, SslMode::Disable);
    assert_eq!(tls.root_cert.as_deref(), Some("/url/root.crt"));
    let (c, _, _) = config("postgres://a,[::1]:7/o", None, &env, t).unwrap();
    assert_eq!(c.get_ports(), [6543, 7]);
    let (c, _, _) = config("postgres://h/o?port=7", None, &env, t).unwrap();
    assert_eq!(c.get_ports(), [7]);
    // A socket directory from the URL's `host` parameter: no TLS there, as in libpq.
    let (c, tls, _) = config("postgres:///o?host=/var/run/postgresql", None, &env, t).unwrap();
    assert_eq!(server(&c), "/var/run/postgresql/.s.PGSQL.6543");
    assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Disable);
    assert_eq!(tls.mode, SslMode::VerifyFull);
    // Nothing anywhere: libpq's defaults.
    let (c, tls, _) = config("postgres://h/o", None, &PgEnv::default(), t).unwrap();
    assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Prefer);
    assert_eq!((tls.mode, tls.root_cert), (SslMode::Prefer, None));
}

#[test]
fn bad_ssl_modes_and_ports_are_named_with_where_they_come_from() {
    let t = Duration::from_secs(3);
    let e = config("postgres://h/o?sslmode=verify", None, &PgEnv::default(), t).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid sslmode `verify` (from the URL): give disable, prefer, require, verify-ca \
         or verify-full"
    );
    let env = PgEnv {
        sslmode: Some("allow".into()),
        ..PgEnv::default()
    };
    let e = config("postgres://h/o", None, &env, t).unwrap_err();
    assert!(e.to_string().contains("`allow` (from PGSSLMODE)"), "{e}");
    let env = PgEnv {
        port: Some("54x".into()),
        ..PgEnv::default()
    };
    let e = config("postgres://h/o", None, &env, t).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid port `54x` (from PGPORT): give a port number"
    );
    let e = config("postgres://me:pw@h/o?sslcert=x", None, &PgEnv::default(), t).unwrap_err();
    assert!(e.to_string().contains("not a valid PostgreSQL URL"), "{e}");
}

#[test]
fn pool_size_is_read_from_the_url_and_checked() {
    let t = Duration::from_secs(3);
    let env = PgEnv::default();
    let size = |url: &str| config(url, None, &env, t).map(|(_, _, n)| n);
    assert_eq!(size("postgres://h/o").unwrap(), None);
    assert_eq!(size("postgres://h/o?pool_size=8").unwrap(), Some(8));
    // Taken out before rust-postgres reads the rest, which it does not know.
    let (c, _, n) = config("postgres://me@h/o?pool_size=2&port=7", None, &env, t).unwrap();
    assert_eq!((n, c.get_ports()), (Some(2), &[7][..]));
    for bad in ["0", "x", "-1", "65", ""] {
        let e = size(&format!("postgres://h/o?pool_size={bad}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid pool_size `{bad}` (from the URL): give a number of connections from 1 \
                 to {MAX_POOL_SIZE}"
            )
        );
    }
}
