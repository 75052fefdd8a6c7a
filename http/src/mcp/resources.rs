//! The coordinator's resources: `session://context` (this machine and project, who is
//! signed on and what each is working on, the scopes in use, the workflow) and
//! `session://state/{session_id}` (every key and value of an instance's own scope).

use std::time::{Duration, UNIX_EPOCH};

use cclog_ingest::coordinator::{Identity, Instances, KvStore};
use serde_json::Value;

use super::{glob_escape, CoordinatorMcp, WORKFLOW};

pub(super) const CONTEXT_URI: &str = "session://context";
pub(super) const STATE_TEMPLATE: &str = "session://state/{session_id}";

impl CoordinatorMcp {
    /// `session://context`.
    pub(super) async fn context_json(&self, identity: &Identity) -> Result<Value, String> {
        let for_work = identity.clone();
        let (signed_on, scopes) = self
            .blocking(identity, None, move |log| {
                let held = Instances::new(log, &for_work.machine, &for_work.project, for_work.lease).held()?;
                let prefix = for_work.prefix();
                let store = KvStore::new(log);
                let mut scopes = Vec::new();
                for scope in store.scopes(Some(&format!("{}*", glob_escape(&prefix))))? {
                    let keys = store.keys(&scope)?.len();
                    scopes.push(serde_json::json!({"scope": scope[prefix.len()..], "keys": keys}));
                }
                // What each holder is working on: the keys of the scope named by its instance.
                let mut signed_on = Vec::new();
                for (instance, claim) in held {
                    let working_on = scope_values(&store, &format!("{prefix}{instance}"))?;
                    let since = UNIX_EPOCH + Duration::from_micros(claim.since_us);
                    signed_on.push(serde_json::json!({
                        "session_id": instance,
                        "holder": claim.holder,
                        "since": humantime::format_rfc3339_micros(since).to_string(),
                        "working_on": working_on,
                    }));
                }
                Ok((signed_on, scopes))
            })
            .await?;
        Ok(serde_json::json!({
            "machine": identity.machine,
            "project": identity.project,
            "full_scope_prefix": identity.prefix(),
            "signed_on": signed_on,
            "scopes": scopes,
            "workflow": WORKFLOW,
        }))
    }

    /// `session://state/{session_id}`: the instance's own scope.
    pub(super) async fn state_json(&self, identity: &Identity, instance: &str) -> Result<Value, String> {
        let full = identity.full_scope(instance).map_err(|error| error.to_string())?;
        let values = self.blocking(identity, None, move |log| scope_values(&KvStore::new(log), &full)).await?;
        Ok(serde_json::json!({"session_id": instance, "scope": instance, "values": values}))
    }
}

/// Every live key of `scope` with its current value.
fn scope_values(store: &KvStore<'_>, scope: &str) -> cclog_ingest::Result<serde_json::Map<String, Value>> {
    let mut values = serde_json::Map::new();
    for key in store.keys(scope)? {
        if let Some(version) = store.retrieve(scope, &key, None)? {
            values.insert(key, version.value.unwrap_or(Value::Null));
        }
    }
    Ok(values)
}
