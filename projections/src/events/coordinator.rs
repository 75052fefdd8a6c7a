//! The session coordinator's vocabulary. Every key-value write is an event on
//! `scope/<scope>` — `kv.set`, `kv.delete` (a [`KeyWrite`]) or `scope.delete` (a
//! [`ScopeDelete`]) — and every instance claim on `instances/<machine>:<project>` —
//! `instance.claimed` or `instance.released` (an [`InstanceChange`]). Each names its
//! [`Writer`].

use serde::{Deserialize, Serialize};

/// Stream of one scope's writes.
pub fn scope_stream(scope: &str) -> String {
    format!("scope/{scope}")
}

/// A value set.
pub const KIND_KV_SET: &str = "kv.set";
/// A key deleted.
pub const KIND_KV_DELETE: &str = "kv.delete";
/// Every live key of a scope deleted.
pub const KIND_SCOPE_DELETE: &str = "scope.delete";

/// Stream of one machine and project's instance claims.
pub fn instances_stream(machine_project: &str) -> String {
    format!("instances/{machine_project}")
}

/// An instance claimed by a holder.
pub const KIND_INSTANCE_CLAIMED: &str = "instance.claimed";
/// An instance released.
pub const KIND_INSTANCE_RELEASED: &str = "instance.released";

/// The payload of `instance.claimed` and `instance.released`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub instance: String,
    /// Who claims it (an MCP connection, a client); empty on release.
    pub holder: String,
}

/// Who made a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// The coordinator instance (`claude_1`, …), or `cli` for `cclog kv`.
    pub instance: String,
    pub machine: String,
    pub project: String,
}

/// The payload of `kv.set` and `kv.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWrite {
    pub key: String,
    /// The value as JSON text; `None` for a deletion.
    pub value: Option<String>,
    pub writer: Writer,
}

/// The payload of `scope.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDelete {
    pub writer: Writer,
}
