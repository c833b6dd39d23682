//! TLS of the connection (rustls on ring, through tokio-postgres-rustls), checking the server's
//! certificate as libpq's `sslmode` says: `prefer` and `require` encrypt without checking it
//! (`require` with a root certificate file checks the chain, as libpq does), `verify-ca` checks
//! that a trusted root signed it, `verify-full` also that it names the host. The roots are the
//! PEM file of `sslrootcert`, else `~/.postgresql/root.crt` when it exists, else (and for
//! `sslrootcert=system`) the system's.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::url::{SslMode, Tls};

/// Why no TLS client could be made. The messages are reasons for
/// [`StoreError::Unreachable`](orchestra_store::StoreError).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The root certificate file cannot be read or holds no certificate.
    #[error("cannot read the root certificates in {path} (sslrootcert): {reason}")]
    RootCert { path: String, reason: String },
    /// The system has no root certificates and none were given.
    #[error(
        "sslmode={mode} needs root certificates and there are none: give sslrootcert=FILE (a PEM \
         file) or install the system's (Debian: ca-certificates)"
    )]
    NoRoots { mode: &'static str },
    /// rustls refuses the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS connector for `tls`.
pub(crate) fn connector(tls: &Tls) -> Result<MakeRustlsConnect, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let file = tls.root_cert.as_deref().filter(|r| *r != "system");
    let verifier: Arc<dyn ServerCertVerifier> = match tls.mode {
        SslMode::Disable | SslMode::Prefer => {
            Arc::new(Unchecked(provider.signature_verification_algorithms))
        }
        SslMode::Require if file.is_none() => {
            Arc::new(Unchecked(provider.signature_verification_algorithms))
        }
        SslMode::Require | SslMode::VerifyCa => Arc::new(ChainOnly(webpki(tls, provider)?)),
        SslMode::VerifyFull => webpki(tls, provider)?,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// rustls's verifier of the chain and the name, on the roots of `tls`.
fn webpki(tls: &Tls, provider: Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in root_certs(tls)? {
        // A certificate rustls cannot use as a root is left out, as libpq's OpenSSL does.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots {
            mode: tls.mode.name(),
        });
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))
}

/// The root certificates of `tls`: its file, `~/.postgresql/root.crt`, or the system's.
fn root_certs(tls: &Tls) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let home_file = || {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
            .filter(|p| p.is_file())
    };
    let path = match tls.root_cert.as_deref() {
        Some("system") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => home_file(),
    };
    let Some(path) = path else {
        // Certificates the system store cannot parse are left out; none at all is reported
        // by the caller.
        return Ok(rustls_native_certs::load_native_certs().certs);
    };
    let bad = |reason: String| TlsError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// Accepts any certificate (`prefer`, `require`): the connection is encrypted, the server not
/// authenticated. Handshake signatures are still checked.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Checks the chain up to a trusted root, not the name (`verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
