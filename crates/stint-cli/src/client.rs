//! The CLI's HTTP client and its saved session.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stint_api::ErrorBody;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7807";

/// What `stint login` saves, mode 0600, in the user's config directory.
#[derive(Serialize, Deserialize)]
pub struct SavedSession {
    pub server: String,
    pub session_token: String,
    pub session_id: String,
    pub username: String,
    pub expires_at: String,
    /// The CA file the server's certificate was verified with at login (`--ca-file`), used
    /// again by later commands that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The CA file of this run (`--ca-file` / `STINT_CA_FILE`), set once at start.
static CA_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Trust only the CA certificates in `path` (PEM) for the server's certificate, instead of the
/// system's roots. The first call wins.
pub fn trust_ca_file(path: PathBuf) {
    let path = std::path::absolute(&path).unwrap_or(path);
    let _ = CA_FILE.set(path);
}

/// The CA file in use, if any, to save with the session.
pub fn ca_file() -> Option<PathBuf> {
    CA_FILE.get().cloned()
}

/// An HTTP client that verifies servers with the system's roots, or only with the CA file.
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = CA_FILE.get() {
        let what = || format!("the CA file {} (--ca-file / STINT_CA_FILE)", path.display());
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", what()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| format!("{} is not PEM", what()))?;
        if certs.is_empty() {
            bail!("{} holds no certificate", what());
        }
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    Ok(b.build()?)
}

/// `$STINT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/stint`, else `~/.config/stint`.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("STINT_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("stint"));
    }
    let home = std::env::var_os("HOME").context("cannot find your home directory; set STINT_CONFIG_DIR")?;
    Ok(PathBuf::from(home).join(".config").join("stint"))
}

fn session_path() -> Result<PathBuf> {
    Ok(config_dir()?.join("session.json"))
}

pub fn load_session() -> Result<Option<SavedSession>> {
    let path = session_path()?;
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(serde_json::from_str(&t).with_context(|| format!("{} is corrupt; run `stint login`", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn save_session(s: &SavedSession) -> Result<PathBuf> {
    let dir = config_dir()?;
    stint_os::ensure_private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = session_path()?;
    stint_os::write_atomic(&path, serde_json::to_string_pretty(s)?.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn forget_session() -> Result<()> {
    match std::fs::remove_file(session_path()?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A client for one stint server, optionally authenticated with a session.
pub struct Client {
    http: reqwest::Client,
    pub server: String,
    token: Option<String>,
}

/// An error the server returned, with its stable code.
#[derive(Debug)]
pub struct ServerError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::error::Error for ServerError {}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The server could not be reached at all (refused, unresolvable, timed out): it said nothing.
#[derive(Debug)]
pub struct Unreachable {
    pub server: String,
    source: reqwest::Error,
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if untrusted_certificate(&self.source) {
            return write!(
                f,
                "the stint server at {} presented a TLS certificate this machine does not trust; \
                 pass the CA that signed it with --ca-file or STINT_CA_FILE",
                self.server
            );
        }
        write!(f, "cannot reach the stint server at {}; is it running? (--server / STINT_SERVER)", self.server)
    }
}

/// Whether the request failed because the server's certificate was not trusted.
fn untrusted_certificate(e: &reqwest::Error) -> bool {
    // The connector (hyper-rustls through hyper-util) boxes rustls' error so that no
    // `rustls::Error` can be downcast from the chain; its message is stable
    // (`rustls::Error::InvalidCertificate` displays as "invalid peer certificate: …").
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().starts_with("invalid peer certificate") {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether `e` is the server being out of reach (rather than its answer).
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Unreachable>().is_some()
}

impl Client {
    pub fn new(server: &str) -> Result<Client> {
        let http = http_client(std::time::Duration::from_secs(60))?;
        Ok(Client { http, server: server.trim_end_matches('/').to_owned(), token: None })
    }

    /// A client using the saved session; `server` overrides the saved server.
    pub fn authenticated(server: Option<&str>) -> Result<Client> {
        Ok(Self::with_session(server)?.0)
    }

    /// As [`Client::authenticated`], also returning the saved session.
    pub fn with_session(server: Option<&str>) -> Result<(Client, SavedSession)> {
        let Some(saved) = load_session()? else { bail!("not logged in; run `stint login`") };
        if let Some(ca) = &saved.ca_file {
            trust_ca_file(ca.clone());
        }
        let mut c = Client::new(server.unwrap_or(&saved.server))?;
        c.token = Some(saved.session_token.clone());
        Ok((c, saved))
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|source| Unreachable { server: self.server.clone(), source })?;
        let status = resp.status();
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return Ok(serde_json::from_value(serde_json::Value::Null)?);
            }
            return resp.json().await.context("the server sent a response this client does not understand");
        }
        let body: Option<ErrorBody> = resp.json().await.ok();
        let (code, message) = body.map_or(("http_error".into(), format!("HTTP {status}")), |b| (b.error, b.message));
        Err(ServerError { status: status.as_u16(), code, message }.into())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(format!("{}{path}", self.server))).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.server)).json(body)).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.send(self.http.put(format!("{}{path}", self.server)).json(body)).await
    }

    pub async fn post_form<T: DeserializeOwned>(&self, path: &str, form: &[(&str, &str)]) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.server)).form(form)).await
    }

    pub async fn post_bytes<T: DeserializeOwned>(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.server)).header(reqwest::header::CONTENT_TYPE, content_type).body(body)).await
    }

    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.server))).await
    }
}
