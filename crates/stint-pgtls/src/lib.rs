//! PostgreSQL connections with TLS, as `libpq` users write them.
//!
//! A `postgres://` URL may say how TLS is done with libpq's parameters, which the driver
//! (`tokio-postgres`) only partly knows:
//!
//! | `sslmode`     | TLS                                | the server's certificate              |
//! |---------------|------------------------------------|---------------------------------------|
//! | `disable`     | never                              | —                                     |
//! | `prefer`      | when the server offers it (default)| not checked                           |
//! | `require`     | always                             | not checked                           |
//! | `verify-ca`   | always                             | signed by a trusted CA                |
//! | `verify-full` | always                             | signed by a trusted CA, for the host  |
//!
//! `sslrootcert=/path/ca.pem` names the trusted CAs (PEM); without it, or with
//! `sslrootcert=system`, the operating system's roots are trusted. [`Target::parse`] takes
//! both parameters out of the URL, gives the rest to the driver, and [`Target::connect`]
//! connects through rustls (TLS 1.2 and 1.3 only).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Connection, Socket};

/// How TLS is negotiated and how much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, UrlError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(UrlError(format!("sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked against trusted CAs.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// A URL stint cannot connect with; the message names the parameter, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

/// Where a PostgreSQL server is, and how to reach it safely.
#[derive(Clone)]
pub struct Target {
    /// The driver's settings (host, user, database…), TLS mode included.
    pub config: Config,
    tls: Tls,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The driver's Config redacts the password in its Debug.
        f.debug_struct("Target").field("config", &self.config).field("sslmode", &self.tls.mode).finish()
    }
}

impl Target {
    /// Reads a `postgres://` URL with libpq's `sslmode` and `sslrootcert`; the CA file is read now.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let (rest, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root) = (SslMode::Prefer, None::<String>);
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || percent_encoding::percent_decode_str(v).decode_utf8().map(|s| s.into_owned()).map_err(|_| UrlError(format!("{k} is not UTF-8")));
            match k {
                "sslmode" => mode = SslMode::parse(&value()?)?,
                "sslrootcert" => root = Some(value()?),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                    return Err(UrlError(format!("{k} is not supported: stint authenticates to PostgreSQL with a password")))
                }
                _ => kept.push(pair),
            }
        }
        let driver_url = if kept.is_empty() { rest.to_owned() } else { format!("{rest}?{}", kept.join("&")) };
        let mut config: Config = driver_url.parse().map_err(|e: tokio_postgres::Error| UrlError(format!("not a PostgreSQL URL: {e}")))?;
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let roots = match root.as_deref() {
            Some(path) if path != "system" => Roots::File(PathBuf::from(path)),
            _ => Roots::System,
        };
        if root.is_some() && !mode.verifies() {
            return Err(UrlError(format!("sslrootcert is used only to verify the server: add sslmode=verify-full (sslmode is {})", mode.as_str())));
        }
        let tls = Tls::new(mode, &roots)?;
        Ok(Target { config, tls })
    }

    pub fn sslmode(&self) -> SslMode {
        self.tls.mode
    }

    /// Opens a connection; the caller spawns the returned connection future.
    pub async fn connect(&self) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

enum Roots {
    System,
    File(PathBuf),
}

/// The rustls connector of one target.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    config: Arc<ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    fn new(mode: SslMode, roots: &Roots) -> Result<Tls, UrlError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| UrlError(format!("TLS: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = if mode.verifies() {
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(roots)?), provider())
                .build()
                .map_err(|e| UrlError(format!("sslrootcert: {e}")))?;
            Arc::new(Checked { chain, check_host: mode == SslMode::VerifyFull })
        } else {
            Arc::new(Unchecked(provider()))
        };
        let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
        Ok(Tls { mode, config: Arc::new(config) })
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, UrlError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| UrlError(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(UrlError(format!("sslrootcert {}: no CA certificate in it", path.display())));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(UrlError("sslmode verifies the server, but this system has no CA certificates: set sslrootcert=/path/to/ca.pem".into()));
            }
        }
    }
    Ok(store)
}

/// `verify-ca` and `verify-full`: the chain must lead to a trusted CA; `verify-full` also
/// checks the certificate names the host connected to.
#[derive(Debug)]
struct Checked {
    chain: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // libpq's verify-ca: the CA vouches for the server; its name is not compared.
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. }))
                if !self.check_host =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, but the certificate is not checked (libpq's meaning).
/// The handshake's signatures are still verified, so the session is bound to the key the
/// server presented.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl MakeTlsConnect<Socket> for Tls {
    type Stream = TlsStream;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        let name =
            ServerName::try_from(domain.to_owned()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{domain:?} is not a host name")))?;
        Ok(Connect { config: self.config.clone(), name })
    }
}

/// One TLS handshake with the server `name`.
pub struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for Connect {
    type Stream = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(TlsStream) })
    }
}

/// A TLS session with the server.
pub struct TlsStream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for TlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM channel binding needs the hash of the certificate's signature algorithm,
        // which means parsing X.509; stint does not ask for it (the default `prefer`).
        ChannelBinding::none()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url() {
        let t = Target::parse("postgres://stint@db.example:5433/app?sslmode=require&application_name=x").unwrap();
        assert_eq!(t.sslmode(), SslMode::Require);
        assert_eq!(t.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.config.get_ports(), [5433]);
        let plain = Target::parse("postgres://stint@localhost/app").unwrap();
        assert_eq!(plain.sslmode(), SslMode::Prefer, "libpq's default");
        assert_eq!(Target::parse("postgres://h/app?sslmode=disable").unwrap().config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn bad_tls_parameters_are_refused_with_what_to_do() {
        for (url, says) in [
            ("postgres://h/app?sslmode=verify", "is not one of"),
            ("postgres://h/app?sslmode=require&sslrootcert=/ca.pem", "add sslmode=verify-full"),
            ("postgres://h/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "sslrootcert /nonexistent/ca.pem"),
            ("postgres://h/app?sslcert=/c.pem", "not supported"),
            ("postgres://h/app?nonsense=1", "not a PostgreSQL URL"),
        ] {
            let e = Target::parse(url).unwrap_err();
            assert!(e.0.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn a_file_without_a_certificate_is_no_ca() {
        let dir = std::env::temp_dir().join(format!("stint-pgtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = Target::parse(&format!("postgres://h/app?sslmode=verify-full&sslrootcert={}", f.display())).unwrap_err();
        assert!(e.0.contains("no CA certificate"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
