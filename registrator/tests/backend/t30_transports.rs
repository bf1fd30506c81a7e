//! The other transports of the Consul backends: `consul-unix://` and
//! `consulkv-unix://` over a unix socket, `consul-tls://` over TLS with a client
//! certificate. registry-node serves plain HTTP on TCP only, so each test puts a
//! byte relay in front of it: a unix-socket listener, or a TLS terminator that
//! requires a client certificate. Every request still reaches the real agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use registrator::backend::{self, BackendError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream, UnixListener};

use super::*;

/// Relays every connection on a unix socket at `path` to `target`.
fn unix_relay(path: &Path, target: SocketAddr) {
    let listener = UnixListener::bind(path).expect("bind unix socket");
    tokio::spawn(async move {
        while let Ok((mut unix, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut tcp) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut unix, &mut tcp).await;
                }
            });
        }
    });
}

/// Terminates TLS (client certificate required) on a loopback port and relays to `target`.
async fn tls_relay(config: Arc<rustls::ServerConfig>, target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut upstream) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    addr
}

/// PEM text of one DER object.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A CA, a server certificate for `localhost`/`127.0.0.1`, a client certificate,
/// their PEM files, and the relay's server configuration trusting the CA for clients.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

fn new_ca(name: &str) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA");
    (Issuer::new(params, key), cert.der().clone())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let (issuer, ca_der) = new_ca("registrator test CA");
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).expect("sign");
        (cert.der().clone(), key)
    };
    let (server_der, server_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_der, client_key) = leaf(
        vec!["registrator".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let ca = write("ca.pem", pem("CERTIFICATE", &ca_der));
    let client_cert = write("client.pem", pem("CERTIFICATE", &client_der));
    let client_key = write(
        "client-key.pem",
        pem("PRIVATE KEY", &client_key.serialize_der()),
    );

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der).expect("root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_der],
            PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .expect("server config");
    Pki {
        _dir: dir,
        ca,
        client_cert,
        client_key,
        server: Arc::new(server),
    }
}

/// What this test does:
/// - `consul-unix:///…/consul.sock` pings, registers (seen on the agent),
///   lists and deregisters through the socket;
/// - `consulkv-unix:///…/consul.sock:/services` writes `services/<Name>/<ID>`;
/// - a missing socket is `Unreachable` and names the socket.
#[tokio::test]
async fn unix_socket() {
    let agent = TestAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("consul.sock");
    unix_relay(&socket, agent.handle.http_addr);

    // --- step: consul-unix
    let consul = backend::from_uri(&format!("consul-unix://{}", socket.display())).unwrap();
    let text = consul.ping().await.unwrap();
    assert!(
        text.starts_with("consul: current leader 127.0.0.1:"),
        "{text}"
    );
    let web = service("host1:web:80", "web", "10.0.0.5", 8080);
    consul.register(&web).await.unwrap();
    let (_, services) = get_json(&agent, "/v1/agent/services").await;
    assert_eq!(services["host1:web:80"]["Port"], 8080, "{services}");
    assert!(
        consul
            .services()
            .await
            .unwrap()
            .iter()
            .any(|s| s.id == "host1:web:80")
    );
    consul.deregister(&web).await.unwrap();
    let (_, services) = get_json(&agent, "/v1/agent/services").await;
    assert!(services.get("host1:web:80").is_none(), "{services}");

    // --- step: consulkv-unix with a prefix after the socket path
    let kv = backend::from_uri(&format!("consulkv-unix://{}:/services", socket.display())).unwrap();
    kv.register(&web).await.unwrap();
    assert_eq!(
        get_text(&agent, "/v1/kv/services/web/host1:web:80?raw").await,
        (200, "10.0.0.5:8080".to_string())
    );

    // --- step: a missing socket
    let missing = dir.path().join("nope.sock");
    let consul = backend::from_uri(&format!("consul-unix://{}", missing.display())).unwrap();
    let err = consul.ping().await.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "consul at unix://{} is unreachable (no such socket file); is the agent running \
             and listening on that socket?",
            missing.display()
        )
    );
    agent.shutdown().await;
}

/// What this test does:
/// - `consul-tls://127.0.0.1:<port>` and `consul-tls://localhost:<port>` with
///   `CONSUL_CACERT`, `CONSUL_CLIENT_CERT` and `CONSUL_CLIENT_KEY` ping and
///   register through a TLS terminator that requires a client certificate;
/// - a server certificate from another CA is a `Tls` error, not retryable.
#[tokio::test]
async fn tls_with_client_certificate() {
    let agent = TestAgent::start().await;
    let pki = pki();
    let relay = tls_relay(pki.server.clone(), agent.handle.http_addr).await;
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let env = env_of(&[
        ("CONSUL_CACERT", &ca),
        ("CONSUL_CLIENT_CERT", &cert),
        ("CONSUL_CLIENT_KEY", &key),
    ]);

    // --- step: by IP and by name
    for host in ["127.0.0.1", "localhost"] {
        let uri = format!("consul-tls://{host}:{}", relay.port());
        let consul = backend::from_uri_with_env(&uri, &env).unwrap();
        let text = consul.ping().await.unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert!(text.starts_with("consul: current leader "), "{text}");
        let web = service(&format!("{host}:web:80"), "web", "10.0.0.5", 8080);
        consul.register(&web).await.unwrap();
        let (_, services) = get_json(&agent, "/v1/agent/services").await;
        assert_eq!(services[&web.id]["Address"], "10.0.0.5", "{services}");
    }

    // --- step: an untrusted server certificate
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = other_dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, pem("CERTIFICATE", &new_ca("another CA").1)).unwrap();
    let other_ca = other_ca.display().to_string();
    let env = env_of(&[
        ("CONSUL_CACERT", &other_ca),
        ("CONSUL_CLIENT_CERT", &cert),
        ("CONSUL_CLIENT_KEY", &key),
    ]);
    let uri = format!("consul-tls://127.0.0.1:{}", relay.port());
    let consul = backend::from_uri_with_env(&uri, &env).unwrap();
    let err = consul.ping().await.unwrap_err();
    assert!(matches!(err, BackendError::Tls { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    agent.shutdown().await;
}
