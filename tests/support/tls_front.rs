//! An HTTPS front for the test servers: terminates TLS on 127.0.0.1 with a
//! certificate from a throwaway CA, and forwards the plain bytes to a backend
//! (a wiremock or git server), so TLS trust can be tested for real.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls;

use super::background::Background;

pub struct TlsFront {
    background: Background,
    ca_pem: String,
}

impl TlsFront {
    /// Starts forwarding `https://127.0.0.1:PORT` to `backend` (host:port).
    pub fn start(backend: SocketAddr) -> Self {
        Self::start_for(backend, &["127.0.0.1", "localhost"])
    }

    /// The same, with a certificate for `names` only (a name mismatch when
    /// they do not include 127.0.0.1).
    pub fn start_for(backend: SocketAddr, names: &[&str]) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bbinject test CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("key"),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let background = Background::serve(move |stream| {
            let acceptor = acceptor.clone();
            async move {
                // A client that does not trust us aborts the handshake: fine.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            }
        });
        Self {
            background,
            ca_pem: ca_cert.pem(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.background.addr())
    }

    /// The CA certificate that signed the server certificate, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}
