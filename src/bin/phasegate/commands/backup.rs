//! `backup`: recording a backup of an environment.

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::Workspace;

use super::envelope::Report;

/// `backup`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackupPayload {
    pub env: String,
    /// Where the backup is, as recorded.
    pub location: String,
}

/// `phasegate backup`.
pub async fn run(ws: &Workspace<'_>, env: &str, location: Option<&str>) -> Report<BackupPayload> {
    match ws.backup(env, location).await {
        Ok(at) => Report::done(
            "backup",
            format!("backup of {env} recorded: {at}\n"),
            BackupPayload {
                env: env.to_string(),
                location: at,
            },
        ),
        Err(e) => Report::from_error("backup", &e),
    }
}
