//! What IAM says of an account's long-lived credentials: the credential report
//! (`GenerateCredentialReport`, `GetCredentialReport`) and every user's access keys
//! (`ListUsers`, `ListAccessKeys`, `GetAccessKeyLastUsed`).
//!
//! IAM generates a new credential report at most every 4 hours; asked within that time, it
//! answers with the newest one. So fetching often costs nothing and never makes IAM work
//! harder: what comes back may be a report stint already keeps.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::Iam;

/// How often a report being generated is asked for again.
const POLL: Duration = Duration::from_secs(2);

/// The report as `GetCredentialReport` gives it.
#[derive(Clone, Debug)]
pub struct CredentialReport {
    /// The CSV, decoded from the API's base64.
    pub csv: Vec<u8>,
    /// When IAM generated it, in seconds since the epoch.
    pub generated_at: i64,
}

/// One access key, as `ListAccessKeys` and `GetAccessKeyLastUsed` describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    pub user: String,
    /// The access key id (`AKIA…`): not a secret, but what names the key to deactivate.
    pub id: String,
    pub active: bool,
    /// When it was created, in seconds since the epoch.
    pub created: Option<i64>,
    pub last_used: Option<i64>,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
}

impl Iam {
    /// Asks IAM for its credential report, generating one if the newest is over 4 hours old,
    /// and waits at most `wait` for it.
    #[tracing::instrument(skip_all)]
    pub async fn credential_report(&self, wait: Duration) -> Result<CredentialReport> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let state = self.client.generate_credential_report().send().await.map_err(|e| Error::from_sdk("iam", e))?.state;
            let ready = state.as_ref().is_some_and(|s| s.as_str() == "COMPLETE");
            if ready {
                match self.reports.get_credential_report().send().await.map_err(|e| Error::from_sdk("iam", e)) {
                    Ok(out) => {
                        let csv = out.content.map(|b| b.into_inner()).ok_or_else(|| malformed("the credential report has no Content"))?;
                        let generated_at = out.generated_time.map(|t| t.secs()).ok_or_else(|| malformed("the credential report has no GeneratedTime"))?;
                        if out.report_format.as_ref().is_some_and(|f| f.as_str() != "text/csv") {
                            return Err(malformed("the credential report is not text/csv"));
                        }
                        return Ok(CredentialReport { csv, generated_at });
                    }
                    // Between the two calls IAM may have begun a new report.
                    Err(e) if matches!(e.aws_code(), Some("ReportInProgress" | "ReportNotPresent")) => {}
                    Err(e) => return Err(e),
                }
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Err(Error::Transport {
                    service: "iam",
                    detail: format!("the credential report was not ready within {} s; ask again in a minute", wait.as_secs()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every IAM user's access keys, with when each was last used.
    #[tracing::instrument(skip_all)]
    pub async fn access_keys(&self) -> Result<Vec<ListedKey>> {
        let mut users = Vec::new();
        let mut marker = None;
        loop {
            let page = self.client.list_users().set_marker(marker).send().await.map_err(|e| Error::from_sdk("iam", e))?;
            users.extend(page.users.into_iter().map(|u| u.user_name));
            marker = page.marker.filter(|_| page.is_truncated);
            if marker.is_none() {
                break;
            }
        }
        let mut keys = Vec::new();
        for user in users {
            let mut marker = None;
            loop {
                let page = self.client.list_access_keys().user_name(&user).set_marker(marker).send().await.map_err(|e| Error::from_sdk("iam", e))?;
                for k in page.access_key_metadata {
                    let Some(id) = k.access_key_id else { continue };
                    let used = self.client.get_access_key_last_used().access_key_id(&id).send().await.map_err(|e| Error::from_sdk("iam", e))?;
                    let last = used.access_key_last_used;
                    keys.push(ListedKey {
                        user: user.clone(),
                        active: k.status.is_some_and(|s| s.as_str() == "Active"),
                        created: k.create_date.map(|t| t.secs()),
                        last_used: last.as_ref().and_then(|l| l.last_used_date).map(|t| t.secs()),
                        last_used_service: last.as_ref().map(|l| l.service_name.clone()).filter(|s| s != "N/A"),
                        last_used_region: last.as_ref().map(|l| l.region.clone()).filter(|s| s != "N/A"),
                        id,
                    });
                }
                marker = page.marker.filter(|_| page.is_truncated);
                if marker.is_none() {
                    break;
                }
            }
        }
        Ok(keys)
    }
}

fn malformed(detail: &str) -> Error {
    Error::Malformed { service: "iam", detail: detail.to_owned() }
}
