//! TLS client configurations for HTTPS and TCP+TLS checks.
//!
//! Every configuration is built with an explicit ring `CryptoProvider`
//! (`ClientConfig::builder_with_provider`), so nothing depends on a process-wide default
//! provider being installed. Certificates are verified against the system roots, like Go's
//! default TLS config that Consul uses for checks; `tls_skip_verify` swaps in a verifier that
//! accepts any certificate but still checks the handshake signatures (Go's
//! `InsecureSkipVerify`). The server name (SNI and verification) is the URL's host unless
//! `tls_server_name` overrides it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The four configurations a check can need: verified or not, with or without ALPN `http/1.1`.
#[derive(Debug)]
pub(super) struct TlsConfigs {
    verify_http: Arc<ClientConfig>,
    verify_plain: Arc<ClientConfig>,
    skip_http: Arc<ClientConfig>,
    skip_plain: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// Builds the configurations, loading the system's root certificates once.
    pub(super) fn load() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "failed to load a system root certificate for checks");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "loaded system root certificates for checks");
        let roots = Arc::new(roots);

        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
        };
        let verify = builder()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let skip = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider.clone())))
            .with_no_client_auth();
        let with_alpn = |config: &ClientConfig| {
            // The probe speaks HTTP/1.1 only; say so, or an h2-only server would pick h2.
            let mut config = config.clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        };
        Self {
            verify_http: with_alpn(&verify),
            skip_http: with_alpn(&skip),
            verify_plain: Arc::new(verify),
            skip_plain: Arc::new(skip),
        }
    }

    /// For HTTPS checks.
    pub(super) fn http(&self, skip_verify: bool) -> Arc<ClientConfig> {
        if skip_verify {
            self.skip_http.clone()
        } else {
            self.verify_http.clone()
        }
    }

    /// For TCP+TLS checks (no ALPN).
    pub(super) fn plain(&self, skip_verify: bool) -> Arc<ClientConfig> {
        if skip_verify {
            self.skip_plain.clone()
        } else {
            self.verify_plain.clone()
        }
    }
}

/// Completes a TLS handshake over `tcp` for `server_name`. Errors read like Go's.
pub(super) async fn connect(
    config: Arc<ClientConfig>,
    server_name: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(
        server_name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|e| format!("tls: invalid server name {server_name:?}: {e}"))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| handshake_error(&e, server_name))
}

/// Go's texts for the common certificate failures; rustls's own text otherwise.
fn handshake_error(e: &std::io::Error, server_name: &str) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("tls: {e}");
    };
    let x509 = match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate signed by unknown authority".to_string()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("certificate is not valid for {server_name}"),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "certificate has expired or is not yet valid".to_string(),
        other => return format!("tls: {other}"),
    };
    format!("tls: failed to verify certificate: x509: {x509}")
}

/// Accepts any server certificate (`tls_skip_verify`), still verifying handshake signatures.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
