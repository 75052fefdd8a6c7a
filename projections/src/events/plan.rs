//! Plan sessions' vocabulary. A plan is ordered tasks run in one Claude Code session (each
//! task resumes the session the one before it ran in); every step is an event on
//! `plan/<id>`: the plan as given ([`PlanSpec`]), each change of its session and why, each
//! task's start (with its run), completion, failure, retry or skip, and the plan's end or
//! resumption.

use serde::{Deserialize, Serialize};

/// Stream of one plan's events.
pub fn plan_stream(plan: &str) -> String {
    format!("plan/{plan}")
}

/// The plan's id, if `stream` is a plan's.
pub fn plan_id(stream: &str) -> Option<&str> {
    stream.strip_prefix("plan/")
}

/// The plan was created: a [`PlanSpec`].
pub const KIND_CREATED: &str = "plan.created";
/// The plan's Claude Code session changed: a [`SessionChange`].
pub const KIND_SESSION: &str = "plan.session";
/// A task changed: a [`TaskChange`].
pub const KIND_TASK: &str = "plan.task";
/// The plan ended: a [`PlanEnd`].
pub const KIND_ENDED: &str = "plan.ended";
/// The plan was resumed at its first unfinished task: a [`Resumed`].
pub const KIND_RESUMED: &str = "plan.resumed";

/// Options of a task's run; a task's own override the plan's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOptions {
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub max_turns: Option<u32>,
    pub append_system_prompt: Option<String>,
}

impl TaskOptions {
    /// These options, each unset one taken from `defaults`.
    pub fn over(&self, defaults: &TaskOptions) -> TaskOptions {
        TaskOptions {
            model: self.model.clone().or_else(|| defaults.model.clone()),
            permission_mode: self.permission_mode.clone().or_else(|| defaults.permission_mode.clone()),
            allowed_tools: self.allowed_tools.clone().or_else(|| defaults.allowed_tools.clone()),
            max_turns: self.max_turns.or(defaults.max_turns),
            append_system_prompt: self.append_system_prompt.clone().or_else(|| defaults.append_system_prompt.clone()),
        }
    }
}

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub id: String,
    pub prompt: String,
    /// A label such as `create_file`, kept as data.
    pub kind: Option<String>,
    pub options: TaskOptions,
}

/// A plan as given, checked, with every setting resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSpec {
    pub id: String,
    pub cwd: String,
    pub defaults: TaskOptions,
    pub tasks: Vec<TaskSpec>,
    /// How long the plan's session lives after its last use, in milliseconds.
    pub ttl_ms: u64,
    /// Retries of a task in a new session when the session itself fails.
    pub max_session_retries: u32,
    /// Retries of a task in the same session when the task fails on its own merits.
    pub max_task_retries: u32,
    /// Go on with the next task after a task has failed for good.
    pub continue_on_error: bool,
}

/// Why the plan's session changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEvent {
    /// The first task's run began the session.
    Assigned,
    /// A run continued in another session id than the one it resumed (older CLIs wrote a
    /// new session on `--resume`); the plan follows it.
    Changed,
    /// The session outlived its TTL; the next task starts a new one.
    Expired,
    /// The session failed (no conversation found, its transcript gone, a resume that died
    /// before its init message); the task is retried in a new one.
    Replaced,
}

/// The payload of `plan.session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionChange {
    pub event: SessionEvent,
    /// The session now (`None` after an expiry or a failure, until the next run names one).
    pub session: Option<String>,
    pub reason: Option<String>,
}

/// What happened to a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskEvent {
    /// Its run started; `fallback`: its prompt carries the plan-so-far context because the
    /// session is new.
    Started {
        run: String,
        fallback: bool,
    },
    Completed {
        run: String,
    },
    Failed {
        run: Option<String>,
        reason: String,
    },
    /// It runs again: in the same session, or (`new_session`) in a new one.
    Retried {
        new_session: bool,
        reason: String,
    },
    Skipped {
        reason: String,
    },
}

/// The payload of `plan.task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskChange {
    pub task: String,
    pub event: TaskEvent,
}

/// How a plan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanOutcome {
    Completed,
    Failed,
    Cancelled,
}

/// The payload of `plan.ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEnd {
    pub outcome: PlanOutcome,
    pub reason: Option<String>,
}

/// The payload of `plan.resumed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub note: Option<String>,
}

/// Any event of a plan's stream, decoded: what a plan's feed carries and `cclog plan`
/// prints. In JSON, `{"kind": "task", "change": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "change", rename_all = "snake_case")]
pub enum PlanStep {
    Created(PlanSpec),
    Session(SessionChange),
    Task(TaskChange),
    Ended(PlanEnd),
    Resumed(Resumed),
}

impl PlanStep {
    /// The step `event` records; `None` for a kind this version does not know.
    pub fn of(event: &cclog_engine::Event) -> crate::Result<Option<PlanStep>> {
        let payload = &event.payload;
        Ok(Some(match event.kind() {
            KIND_CREATED => PlanStep::Created(super::decode(KIND_CREATED, payload)?),
            KIND_SESSION => PlanStep::Session(super::decode(KIND_SESSION, payload)?),
            KIND_TASK => PlanStep::Task(super::decode(KIND_TASK, payload)?),
            KIND_ENDED => PlanStep::Ended(super::decode(KIND_ENDED, payload)?),
            KIND_RESUMED => PlanStep::Resumed(super::decode(KIND_RESUMED, payload)?),
            _ => return Ok(None),
        }))
    }

    /// The run a task started, if this step says so.
    pub fn started_run(&self) -> Option<(&str, &str)> {
        match self {
            PlanStep::Task(TaskChange { task, event: TaskEvent::Started { run, .. } }) => Some((task, run)),
            _ => None,
        }
    }
}
