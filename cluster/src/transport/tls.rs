//! TLS of the cluster links, mutual: every node presents a certificate signed by the cluster's
//! CA and accepts only peers that present one too, whichever side dialled.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where a node's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles<'a> {
    /// This node's certificate (then any intermediates), PEM.
    pub cert: &'a Path,
    /// Its private key, PEM.
    pub key: &'a Path,
    /// The CA certificates peers' certificates must chain to, PEM.
    pub ca: &'a Path,
    /// The name every node's certificate carries: peers are dialled by address, so the name
    /// checked is this shared one.
    pub server_name: &'a str,
}

/// Which part of the TLS setting a [`LinkTlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPart {
    Cert,
    Key,
    Ca,
    ServerName,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct LinkTlsError {
    pub part: TlsPart,
    /// The file, or the server name.
    pub what: String,
    pub reason: String,
}

/// What links need to encrypt: the acceptor of the listener, the connector of the dialler and
/// the name the dialler expects.
#[derive(Clone)]
pub struct LinkTls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl LinkTls {
    pub fn load(files: &TlsFiles<'_>) -> Result<Self, LinkTlsError> {
        let server_name = match ServerName::try_from(files.server_name.to_string()) {
            Ok(name @ ServerName::DnsName(_)) => name,
            _ => return Err(error(TlsPart::ServerName, files.server_name, "not a DNS name")),
        };
        let chain = certificates(TlsPart::Cert, files.cert)?;
        let key = PrivateKeyDer::from_pem_file(files.key).map_err(|e| file_error(TlsPart::Key, files.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(TlsPart::Ca, files.ca)? {
            roots.add(ca).map_err(|e| file_error(TlsPart::Ca, files.ca, e))?;
        }
        let roots = Arc::new(roots);
        let provider: Arc<CryptoProvider> = Arc::new(aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| file_error(TlsPart::Ca, files.ca, e))?;
        // A key that does not match the certificate is found here (rustls compares them).
        let identity_error = |e: tokio_rustls::rustls::Error| file_error(TlsPart::Key, files.key, e);
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(identity_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(identity_error)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(identity_error)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(identity_error)?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }
}

/// Every certificate of a PEM file, at least one.
fn certificates(part: TlsPart, path: &Path) -> Result<Vec<CertificateDer<'static>>, LinkTlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(part, path, e))?;
    if certificates.is_empty() {
        return Err(error(part, &path.display().to_string(), "no PEM certificate in it"));
    }
    Ok(certificates)
}

fn file_error(part: TlsPart, path: &Path, reason: impl std::fmt::Display) -> LinkTlsError {
    error(part, &path.display().to_string(), &reason.to_string())
}

fn error(part: TlsPart, what: &str, reason: &str) -> LinkTlsError {
    LinkTlsError { part, what: what.to_string(), reason: reason.to_string() }
}
