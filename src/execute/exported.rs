//! What `phasegate export` needs from an environment (`crate::export::build`):
//! the plan made there as `apply` makes it, its state there, and the
//! environment's log created if it is not there yet (the exported guard
//! refuses to run in a database without one).

use crate::config::Environment;
use crate::tracker::gates::Verdict;
use crate::tracker::{PlanState, derive, plan_events};

use super::drift::refuse_drift;
use super::{LivePlan, LoadedPlan, RunError, Workspace};

/// A plan made for an environment, for export.
#[derive(Debug, Clone)]
pub struct ForExport<'a> {
    /// The environment it was made for (its dialect and timeouts).
    pub env: &'a Environment,
    /// The plan file as loaded (its text is what `plan_started` records).
    pub loaded: LoadedPlan,
    /// The plan made as `apply` makes it, with the schema it was made against.
    pub plan: LivePlan,
    /// Its state in the environment (all pending when it has not started there).
    pub state: PlanState,
    /// The gates for the plan's next step there, judged as `phasegate gate`
    /// and `apply` judge them ([`Workspace::judge`]); `None` when not judged
    /// (offline tests).
    pub verdict: Option<Verdict>,
}

impl<'a> Workspace<'a> {
    /// The plan `target` made for environment `env` (the first in promotion
    /// order when `None`) exactly as `apply` makes it
    /// ([`Workspace::plan_live`]'s planning: the live schema, or the one
    /// recorded when the plan started there), refusing drift as every
    /// command does. Creates phasegate's tables in the environment's
    /// database when they are not there (as `apply` would).
    pub async fn for_export(
        &self,
        env: Option<&str>,
        target: &str,
    ) -> Result<ForExport<'a>, RunError> {
        let name = match env {
            Some(e) => e.to_string(),
            None => self.config.names().into_iter().next().ok_or_else(|| {
                RunError::Invalid(
                    "phasegate.yaml names no environment: add one, or give --env".into(),
                )
            })?,
        };
        let env: &'a Environment = match self.env(&name)? {
            std::borrow::Cow::Borrowed(env) => env,
            std::borrow::Cow::Owned(_) => {
                return Err(RunError::Invalid(format!(
                    "{name} is a fleet: export writes one database's files and does not work on a fleet's database yet"
                )));
            }
        };
        let loaded = self.load(target)?;
        let mut store = self.open(env).await?;
        let result = async {
            let all = store.events(None).await?;
            let events = plan_events(&all, &loaded.file.name);
            let plan = self.plan_from(&loaded, env, &events).await?;
            let state = derive(&plan_events(&events, &plan.name), plan.phases.len());
            refuse_drift(&plan, &state, &loaded, env)?;
            let (_, verdict) = self
                .judge(&mut store, env, &plan, &loaded, &all, None)
                .await?;
            Ok::<_, RunError>((plan, state, verdict))
        }
        .await;
        store.close().await;
        let (plan, state, verdict) = result?;
        Ok(ForExport {
            env,
            loaded,
            plan,
            state,
            verdict: Some(verdict),
        })
    }
}
