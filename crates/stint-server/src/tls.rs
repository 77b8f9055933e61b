//! HTTPS: the certificate stint serves, reloaded when its files change or on `SIGHUP`, and a
//! listener that completes TLS handshakes before handing connections to the HTTP server.
//!
//! A reload swaps the certificate new handshakes get; connections already open keep theirs,
//! so nothing is dropped. A certificate that fails to load (half-written file, key that does
//! not match) is reported and the one in use is kept.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The certificate chain and private key files (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How often the files are checked for a change (`SIGHUP` reloads at once).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// A client that has not finished its handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once: each costs a signature, and the clients are not yet
/// authenticated, so their number is bounded.
const MAX_HANDSHAKES: usize = 256;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the certificate chain and its key. The message names the file and what
/// is wrong, never key material.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert_file {}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls_cert_file {}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\")", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("tls_key_file {}: no private key in it ({e})", files.key.display()))?;
    let key = provider().key_provider.load_private_key(key).map_err(|e| format!("tls_key_file {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, key);
    certified.keys_match().map_err(|_| format!("tls_key_file {} is not the key of the certificate in {}", files.key.display(), files.cert.display()))?;
    Ok(certified)
}

/// SHA-256 of the leaf certificate, to name it in the log.
fn fingerprint(k: &CertifiedKey) -> String {
    k.cert.first().map(|c| data_encoding::HEXLOWER.encode(&ring::digest::digest(&ring::digest::SHA256, c.as_ref()).as_ref()[..8])).unwrap_or_default()
}

/// What identifies a version of the files without reading them: modification time and size.
fn stamp(files: &TlsFiles) -> Option<[(SystemTime, u64); 2]> {
    let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([one(&files.cert)?, one(&files.key)?])
}

/// The certificate new handshakes get; replaced by [`Certificate::reload`].
#[derive(Debug)]
pub struct Certificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    seen: RwLock<Option<[(SystemTime, u64); 2]>>,
}

impl Certificate {
    pub fn open(files: TlsFiles) -> Result<Arc<Certificate>, String> {
        let seen = stamp(&files);
        let key = load(&files)?;
        tracing::info!(cert = %files.cert.display(), fingerprint = %fingerprint(&key), "serving HTTPS");
        Ok(Arc::new(Certificate { files, current: RwLock::new(Arc::new(key)), seen: RwLock::new(seen) }))
    }

    /// Loads the files again; on failure the certificate in use stays and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        let seen = stamp(&self.files);
        let key = load(&self.files)?;
        tracing::info!(cert = %self.files.cert.display(), fingerprint = %fingerprint(&key), "TLS certificate reloaded");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        *self.seen.write().unwrap_or_else(|p| p.into_inner()) = seen;
        Ok(())
    }

    /// Reloads if the files changed since the last load.
    fn reload_if_changed(&self) {
        let now = stamp(&self.files);
        if now.is_none() || now == *self.seen.read().unwrap_or_else(|p| p.into_inner()) {
            return;
        }
        if let Err(e) = self.reload() {
            // Checked again at the next change; until then the old certificate serves.
            *self.seen.write().unwrap_or_else(|p| p.into_inner()) = now;
            tracing::warn!(error = %e, "the changed TLS certificate was not taken; still serving the previous one");
        }
    }

    /// The TLS settings of the listener: TLS 1.2 and 1.3, HTTP/1.1, this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads on `SIGHUP` and whenever the files change, until the task is aborted.
    pub async fn follow(self: Arc<Self>) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tick.tick() => self.reload_if_changed(),
                _ = signalled => {
                    if let Err(e) = self.reload() {
                        tracing::warn!(error = %e, "SIGHUP: the TLS certificate was not reloaded; still serving the previous one");
                    }
                }
            }
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Accepts TCP connections and hands over those whose TLS handshake completed. Handshakes
/// run concurrently (a slow client holds up no one) and are bounded in number and time.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (stream, addr) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                // A client that does not speak TLS, or trusts another certificate: its problem,
                // told to it by the alert; logged at debug so scanners cannot flood the log.
                Ok(Err(e)) => tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends with the listener; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
