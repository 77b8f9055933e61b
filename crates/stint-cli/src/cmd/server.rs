//! `stint server` and `stint config check`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use stint_os::SystemClock;
use stint_server::config::{Config, LogFormat, Overrides, Tls};
use stint_server::App;

use super::operator_error;
use crate::output::Output;
use crate::ServerOpts;

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration and print it with secrets redacted
    Check {
        #[command(flatten)]
        opts: ServerOpts,
        /// Output format
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

fn load(o: &ServerOpts) -> Result<Config> {
    let over = Overrides {
        listen: o.listen.clone(),
        data_dir: o.data_dir.clone(),
        store: o.store.clone(),
        master_key_file: o.master_key_file.clone(),
        public_url: o.public_url.clone(),
        log_format: o.log_format.clone(),
        tls_cert_file: o.tls_cert_file.clone(),
        tls_key_file: o.tls_key_file.clone(),
    };
    Ok(Config::load(o.config.as_deref(), over)?)
}

pub fn config(c: ConfigCmd) -> Result<ExitCode> {
    let ConfigCmd::Check { opts, output } = c;
    let cfg = load(&opts)?;
    let shown = cfg.redacted();
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    output.print(&shown, |v| {
        println!("configuration is valid");
        // The JSON form is the canonical one; text mode prints it too, for reading.
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    })?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("STINT_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // tokio-postgres logs statement parameters at debug level, and parameters carry password
    // hashes and sealed secrets. A separate filter caps it, whatever STINT_LOG asks for.
    let driver_cap = Targets::new().with_default(LevelFilter::TRACE).with_target("tokio_postgres", LevelFilter::INFO);
    // The AWS SDK's crates (`aws_config`, `aws_smithy_*`, …) log failures with the raw HTTP
    // answer in `Debug` form, and a credential provider's answer can hold secrets (an IMDS
    // session token, a container's keys). Only their errors pass; stint logs every AWS failure
    // itself, from the errors' `Display` only (stint-aws `Error`).
    let sdk_cap = tracing_subscriber::filter::filter_fn(|m| !m.target().starts_with("aws_") || *m.level() == tracing::Level::ERROR);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let layer = match format {
        LogFormat::Json => layer.json().with_filter(filter).with_filter(driver_cap).with_filter(sdk_cap).boxed(),
        LogFormat::Text => layer.with_filter(filter).with_filter(driver_cap).with_filter(sdk_cap).boxed(),
    };
    tracing_subscriber::registry().with(layer).init();
}

pub async fn serve(o: ServerOpts) -> Result<ExitCode> {
    let cfg = load(&o)?;
    init_logging(cfg.log_format);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    stint_os::ensure_private_dir(&cfg.data_dir).with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let (kek, local) = stint_server::master_key(&cfg).context("cannot load the master key")?;
    if local {
        tracing::warn!(
            path = %cfg.data_dir.join("master.key").display(),
            "using a master key generated in the data directory: this suits one machine only; for replicas or backups set STINT_MASTER_KEY_FILE to a key kept apart from the data"
        );
    }
    let store = stint_store::open_with(&cfg.store, &cfg.data_dir, cfg.store_timeouts)
        .await
        .map_err(operator_error)
        .with_context(|| format!("cannot open the store {}", stint_store::describe(&cfg.store)))?;
    let app = App::new(&cfg, store, Arc::new(SystemClock), kek).await.map_err(operator_error).context("cannot start")?;
    if let (Some(token), Some(expires)) = (&app.startup.bootstrap_token, app.startup.bootstrap_expires_at) {
        // Printed to stdout for the operator, never to the log.
        println!("\nNo users yet. Create the first administrator within the hour (until {expires}) with:\n");
        println!("    stint bootstrap --server {} --username <your-name> --token {}\n", cfg.broker.issuer, token.expose());
    }
    let tls = match &cfg.tls {
        Tls::Serve(files) => Some(stint_server::tls::Certificate::open(files.clone()).map_err(anyhow::Error::msg)?),
        Tls::Proxy | Tls::Off => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, store = %stint_store::describe(&cfg.store), issuer = %cfg.broker.issuer, "stint server ready");
    app.serve_with(listener, tls, shutdown_signal()).await.context("server failed")?;
    tracing::info!("stint server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM, so in-flight requests finish before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
