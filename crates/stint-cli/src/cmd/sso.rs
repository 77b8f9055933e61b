//! `stint login` through the team's identity provider.
//!
//! Browser: listen on a loopback port, begin with a PKCE challenge, open the browser at the
//! provider, wait for the browser to come back with a one-time login code, redeem it with
//! the verifier. Device (RFC 8628): show a code to enter on another device, poll.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use stint_api::{DeviceAuthorizationResponse, LoginResponse, SsoBeginRequest, SsoBeginResponse, SsoProvidersResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{Client, ServerError};
use stint_os::now;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The longest request line and headers the loopback listener reads from the browser.
const MAX_CALLBACK_BYTES: usize = 16 * 1024;

/// The identity providers the server offers (empty: password login only).
pub async fn providers(c: &Client) -> Result<Vec<String>> {
    let r: SsoProvidersResponse = c.get("/v1/sso/providers").await?;
    Ok(r.providers)
}

/// Tries to open `url` in the person's browser; false when there is none to open.
fn open_browser(url: &str) -> bool {
    use std::process::{Command, Stdio};
    let graphical = cfg!(target_os = "macos") || std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = match std::env::var("BROWSER") {
        Ok(b) if !b.is_empty() => b,
        _ if !graphical => return false,
        _ if cfg!(target_os = "macos") => "open".to_owned(),
        _ => "xdg-open".to_owned(),
    };
    Command::new(opener).arg(url).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().is_ok()
}

/// Browser login: returns the new session.
pub async fn browser(c: &Client, provider: Option<String>, no_browser: bool) -> Result<LoginResponse> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot listen on a loopback port for the browser to return to")?;
    let redirect_uri = format!("http://127.0.0.1:{}{}", listener.local_addr()?.port(), stint_api::loopback::callback::PATH);
    let verifier = stint_core::oidc::pkce_verifier(&mut rand_core::OsRng);
    let begin = SsoBeginRequest {
        provider,
        redirect_uri: redirect_uri.clone(),
        code_challenge: stint_core::oidc::pkce_challenge(&verifier),
        code_challenge_method: Some("S256".into()),
    };
    let started: SsoBeginResponse = c.post("/v1/sso/begin", &begin).await?;
    let opened = !no_browser && open_browser(&started.authorization_url);
    if opened {
        eprintln!("Your browser is opening to sign in with {}. If it does not, open this URL:", started.provider);
    } else {
        eprintln!("Open this URL in a browser on this machine to sign in with {}:", started.provider);
    }
    eprintln!("\n    {}\n", started.authorization_url);
    eprintln!("Waiting for your browser at {redirect_uri} (until {}; no browser here? use `stint login --device`)", started.expires_at);
    let deadline = stint_core::Timestamp::parse_rfc3339(&started.expires_at).map_or(600, |t| t.0 - now().0).max(1);
    let code = tokio::time::timeout(Duration::from_secs(deadline as u64), wait_for_browser(&listener, c, &verifier))
        .await
        .map_err(|_| anyhow::anyhow!("the sign-in was not finished in time; run `stint login` again"))??;
    Ok(code)
}

/// Answers the browser's requests on the loopback listener until one brings the result.
async fn wait_for_browser(listener: &TcpListener, c: &Client, verifier: &stint_core::secret::SecretString) -> Result<LoginResponse> {
    loop {
        let (mut conn, _) = listener.accept().await?;
        let Some(query) = read_callback(&mut conn).await else {
            respond(&mut conn, "404 Not Found", "Not found", "This is stint's sign-in listener.").await;
            continue;
        };
        if let Some(error) = query.get("error") {
            let why = query.get("error_description").cloned().unwrap_or_default();
            respond(&mut conn, "403 Forbidden", "Sign-in refused", &why).await;
            bail!("{why} ({error})");
        }
        let Some(code) = query.get("code") else {
            respond(&mut conn, "400 Bad Request", "Sign-in failed", "The sign-in response carried no code.").await;
            bail!("the browser came back without a login code; run `stint login` again");
        };
        let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", verifier.expose())];
        return match c.post_form::<LoginResponse>("/v1/sso/token", &form).await {
            Ok(r) => {
                respond(
                    &mut conn,
                    "200 OK",
                    "Signed in",
                    &format!("You are signed in to stint as {}. Return to your terminal; you can close this window.", r.username),
                )
                .await;
                Ok(r)
            }
            Err(e) => {
                respond(&mut conn, "403 Forbidden", "Sign-in failed", &e.to_string()).await;
                Err(e)
            }
        };
    }
}

/// Reads one request (to the end of its headers or [`MAX_CALLBACK_BYTES`], for at most ten
/// seconds); the query of `GET /callback?…`, or `None` for anything else.
async fn read_callback(conn: &mut TcpStream) -> Option<std::collections::BTreeMap<String, String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_CALLBACK_BYTES {
            let n = conn.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.ok()??;
    stint_api::loopback::callback::callback_query(&buf)
}

async fn respond(conn: &mut TcpStream, status: &str, title: &str, message: &str) {
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{t} · stint</title><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto\"><h1>{t}</h1><p>{m}</p></body>",
        t = stint_api::html::escape(title),
        m = stint_api::html::escape(message)
    );
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Device login: shows the code, polls at the interval the server asks for.
pub async fn device(c: &Client, provider: Option<String>) -> Result<LoginResponse> {
    let mut form = vec![];
    if let Some(p) = &provider {
        form.push(("provider", p.as_str()));
    }
    let d: DeviceAuthorizationResponse = c.post_form("/v1/sso/device/authorize", &form).await?;
    eprintln!("To sign in with {}, open this URL on any device:\n", d.provider);
    eprintln!("    {}\n", d.verification_uri_complete);
    eprintln!("or go to {} and enter the code:\n\n    {}\n", d.verification_uri, d.user_code);
    eprintln!("Waiting for you to sign in (the code expires in {} minutes)...", (d.expires_in + 59) / 60);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(d.expires_in.max(1) as u64);
    let mut interval = Duration::from_secs(d.interval.max(1) as u64);
    loop {
        // RFC 8628 §3.5: wait the interval before each poll; slow_down adds 5 seconds.
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() >= deadline {
            bail!("the code expired before anyone signed in; run `stint login --device` again");
        }
        let poll = [("grant_type", DEVICE_GRANT), ("device_code", d.device_code.as_str())];
        match c.post_form::<LoginResponse>("/v1/sso/token", &poll).await {
            Ok(r) => return Ok(r),
            Err(e) => match e.downcast_ref::<ServerError>().map(|s| s.code.as_str()) {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += Duration::from_secs(5),
                _ => return Err(e),
            },
        }
    }
}
