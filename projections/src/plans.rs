//! The plan registry: the `plans` projection folds every plan's events on `plan/<id>` into
//! one record per plan — its status, each task's status, runs and session, the session the
//! plan is in and when it was last used (its TTL counts from there), every session it has
//! used, and the metrics plans are judged by: resumes tried and failed, sessions expired
//! and replaced, retries. The plan as given stays in its `plan.created` event
//! ([`PlanRegistry::spec`] reads it); a task's tokens, cost and duration are its runs'
//! ([`PlanRegistry::metrics`] reads them from each run's record and `result` message).
//!
//! Keys: `P` ‖ plan id → postcard([`PlanRecord`]); `R` ‖ run id → postcard(`(plan, task)`),
//! so a run names the plan task it ran.

use cclog_engine::{ApplyError, Event, Log, Projection, ProjectionState};
use serde::{Deserialize, Serialize};

use crate::archive::Archive;
use crate::entry::Usage;
use crate::events;
use crate::events::plan::{self, PlanEnd, PlanOutcome, PlanSpec, SessionChange, SessionEvent, TaskChange, TaskEvent};
use crate::pricing::{Cost, PriceTable};
use crate::{Error, Result};

const NAME: &str = "plans";

/// Where a plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
}

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub status: TaskStatus,
    /// Its runs, oldest first (a retry adds one).
    pub runs: Vec<String>,
    /// The session it last ran in (known once a run of it names one).
    pub session: Option<String>,
    /// Whether its last run's prompt carried the fallback context.
    pub fallback: bool,
    pub retries: u32,
    pub reason: Option<String>,
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub id: String,
    pub created_seq: u64,
    pub created_us: u64,
    pub status: PlanStatus,
    pub reason: Option<String>,
    /// In the plan's order.
    pub tasks: Vec<TaskRecord>,
    /// The session the next task resumes, if any.
    pub session: Option<String>,
    /// When a task last used the session (µs): its TTL counts from here.
    pub session_used_us: Option<u64>,
    /// Every session the plan has been in, in order.
    pub sessions: Vec<String>,
    /// Task starts that resumed a session, and how many of those the session failed.
    pub resumes: u64,
    pub failed_resumes: u64,
    pub expired: u64,
    pub changed: u64,
    pub retries: u64,
    pub resumed: u64,
    pub events: u64,
    pub last_seq: u64,
}

impl PlanRecord {
    /// The first task not yet completed or skipped, where a resume continues.
    pub fn next_task(&self) -> Option<&TaskRecord> {
        self.tasks.iter().find(|task| !matches!(task.status, TaskStatus::Completed | TaskStatus::Skipped))
    }
}

/// The `plans` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanRegistry;

fn plan_key(plan: &str) -> Vec<u8> {
    [b"P", plan.as_bytes()].concat()
}

fn run_key(run: &str) -> Vec<u8> {
    [b"R", run.as_bytes()].concat()
}

impl Projection for PlanRegistry {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, state: &mut ProjectionState<'_>) -> std::result::Result<(), ApplyError> {
        let Some(id) = plan::plan_id(event.stream()) else { return Ok(()) };
        let key = plan_key(id);
        if event.kind() == plan::KIND_CREATED {
            let spec: PlanSpec = events::decode(plan::KIND_CREATED, &event.payload)?;
            let record = PlanRecord {
                id: id.to_string(),
                created_seq: event.seq(),
                created_us: event.header.ts_us,
                status: PlanStatus::Running,
                reason: None,
                tasks: spec
                    .tasks
                    .iter()
                    .map(|task| TaskRecord {
                        id: task.id.clone(),
                        status: TaskStatus::Pending,
                        runs: Vec::new(),
                        session: None,
                        fallback: false,
                        retries: 0,
                        reason: None,
                    })
                    .collect(),
                session: None,
                session_used_us: None,
                sessions: Vec::new(),
                resumes: 0,
                failed_resumes: 0,
                expired: 0,
                changed: 0,
                retries: 0,
                resumed: 0,
                events: 1,
                last_seq: event.seq(),
            };
            state.insert(key, postcard::to_stdvec(&record)?);
            return Ok(());
        }
        // Anything before a plan's creation cannot come from cclog; nothing to fold.
        let Some(bytes) = state.get(&key)? else { return Ok(()) };
        let mut record: PlanRecord = postcard::from_bytes(&bytes)?;
        fold(&mut record, event, state)?;
        record.events += 1;
        record.last_seq = event.seq();
        state.insert(key, postcard::to_stdvec(&record)?);
        Ok(())
    }
}

/// Folds one of a created plan's later events into its record.
fn fold(
    record: &mut PlanRecord,
    event: &Event,
    state: &mut ProjectionState<'_>,
) -> std::result::Result<(), ApplyError> {
    let at = event.header.ts_us;
    match event.kind() {
        plan::KIND_SESSION => {
            let change: SessionChange = events::decode(plan::KIND_SESSION, &event.payload)?;
            match change.event {
                SessionEvent::Assigned | SessionEvent::Changed => {
                    if change.event == SessionEvent::Changed {
                        record.changed += 1;
                    }
                    if let Some(session) = &change.session {
                        if !record.sessions.contains(session) {
                            record.sessions.push(session.clone());
                        }
                    }
                    record.session = change.session;
                    record.session_used_us = Some(at);
                }
                SessionEvent::Expired => {
                    record.expired += 1;
                    record.session = None;
                }
                SessionEvent::Replaced => {
                    record.failed_resumes += 1;
                    record.session = None;
                }
            }
        }
        plan::KIND_TASK => {
            let change: TaskChange = events::decode(plan::KIND_TASK, &event.payload)?;
            let session = record.session.clone();
            let Some(index) = record.tasks.iter().position(|task| task.id == change.task) else { return Ok(()) };
            match change.event {
                TaskEvent::Started { run, fallback } => {
                    state.insert(run_key(&run), postcard::to_stdvec(&(record.id.clone(), change.task.clone()))?);
                    if session.is_some() {
                        record.resumes += 1;
                    }
                    record.session_used_us = Some(at);
                    let task = &mut record.tasks[index];
                    task.status = TaskStatus::Running;
                    task.fallback = fallback;
                    task.reason = None;
                    task.runs.push(run);
                }
                TaskEvent::Completed { .. } => {
                    record.session_used_us = Some(at);
                    let task = &mut record.tasks[index];
                    task.status = TaskStatus::Completed;
                    task.session = session;
                }
                TaskEvent::Failed { reason, .. } => {
                    let task = &mut record.tasks[index];
                    task.status = TaskStatus::Failed;
                    task.session = session;
                    task.reason = Some(reason);
                }
                TaskEvent::Retried { reason, .. } => {
                    record.retries += 1;
                    let task = &mut record.tasks[index];
                    task.retries += 1;
                    task.status = TaskStatus::Pending;
                    task.reason = Some(reason);
                }
                TaskEvent::Skipped { reason } => {
                    let task = &mut record.tasks[index];
                    task.status = TaskStatus::Skipped;
                    task.reason = Some(reason);
                }
            }
        }
        plan::KIND_ENDED => {
            let end: PlanEnd = events::decode(plan::KIND_ENDED, &event.payload)?;
            record.status = match end.outcome {
                PlanOutcome::Completed => PlanStatus::Completed,
                PlanOutcome::Failed => PlanStatus::Failed,
                PlanOutcome::Cancelled => PlanStatus::Cancelled,
            };
            record.reason = end.reason;
            // A task left running by a cancel did not finish.
            for task in &mut record.tasks {
                if task.status == TaskStatus::Running {
                    task.status = TaskStatus::Failed;
                    task.reason.get_or_insert_with(|| "the plan ended while it ran".to_string());
                }
            }
        }
        plan::KIND_RESUMED => {
            let _: plan::Resumed = events::decode(plan::KIND_RESUMED, &event.payload)?;
            record.status = PlanStatus::Running;
            record.reason = None;
            record.resumed += 1;
        }
        _ => {}
    }
    Ok(())
}

/// What a task's runs used and took (or, summed, a plan's).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskMetrics {
    /// The task's id (`None` in a plan's total).
    pub task: Option<String>,
    pub runs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// All four kinds together.
    pub total_tokens: u64,
    /// What the tokens cost at the price table (`None`: none of them is priced).
    pub cost_usd: Option<f64>,
    /// Models it used that the table has no price for.
    pub unpriced_models: Vec<String>,
    /// Its runs' wall time, from start to end (a run still going counts to now).
    pub duration_ms: u64,
}

impl TaskMetrics {
    fn add_usage(&mut self, by_model: &std::collections::BTreeMap<String, Usage>, prices: &PriceTable) {
        for usage in by_model.values() {
            self.input_tokens += usage.input_tokens;
            self.output_tokens += usage.output_tokens;
            self.cache_creation_input_tokens += usage.cache_creation_input_tokens;
            self.cache_read_input_tokens += usage.cache_read_input_tokens;
            self.total_tokens += usage.total();
        }
        self.add_cost(&prices.cost(by_model));
    }

    /// Adds a cost: dollars sum, and a model unpriced in either stays unpriced.
    fn add_cost(&mut self, other: &Cost) {
        let mut cost = Cost { usd: self.cost_usd, unpriced: self.unpriced_models.iter().cloned().collect() };
        cost.add(other);
        self.cost_usd = cost.usd;
        self.unpriced_models = cost.unpriced.into_iter().collect();
    }

    fn add(&mut self, other: &TaskMetrics) {
        self.runs += other.runs;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.total_tokens += other.total_tokens;
        self.add_cost(&Cost { usd: other.cost_usd, unpriced: other.unpriced_models.iter().cloned().collect() });
        self.duration_ms += other.duration_ms;
    }
}

/// A plan's metrics: each task's, in the plan's order, and their sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanMetrics {
    pub tasks: Vec<TaskMetrics>,
    pub total: TaskMetrics,
}

/// What plans are judged by, across every plan (`cclog plan stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanStats {
    pub plans: u64,
    pub completed_plans: u64,
    pub tasks: u64,
    pub completed_tasks: u64,
    pub sessions: u64,
    /// Completed tasks per session a plan used.
    pub tasks_per_session: Option<f64>,
    /// Task starts that resumed a session, those whose session failed, and the share that
    /// did not.
    pub resumes: u64,
    pub failed_resumes: u64,
    pub resume_success_rate: Option<f64>,
    pub expired_sessions: u64,
    pub retries: u64,
    /// What the plans' task runs cost, and per completed task.
    pub cost_usd: Option<f64>,
    pub cost_per_task_usd: Option<f64>,
    pub total_tokens: u64,
    pub unpriced_models: Vec<String>,
}

impl PlanRegistry {
    /// A plan's metrics: its tasks' runs' usage (from each run's `result` message), cost at
    /// `prices`, and wall time.
    pub fn metrics(log: &Log, record: &PlanRecord, prices: &PriceTable) -> Result<PlanMetrics> {
        let now = u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0);
        let mut metrics = PlanMetrics::default();
        for task in &record.tasks {
            let mut task_metrics = TaskMetrics { task: Some(task.id.clone()), ..TaskMetrics::default() };
            for run_id in &task.runs {
                let Some(run) = Archive::run(log, run_id)? else { continue };
                task_metrics.runs += 1;
                task_metrics.add_usage(&Archive::run_usage(log, &run)?, prices);
                task_metrics.duration_ms += run.ended_us.unwrap_or(now).saturating_sub(run.started_us) / 1000;
            }
            metrics.total.add(&task_metrics);
            metrics.tasks.push(task_metrics);
        }
        Ok(metrics)
    }

    /// [`PlanStats`] over every plan, costs at `prices`.
    pub fn stats(log: &Log, prices: &PriceTable) -> Result<PlanStats> {
        let mut stats = PlanStats::default();
        let mut total = TaskMetrics::default();
        for plan in Self::all(log)? {
            stats.plans += 1;
            stats.completed_plans += u64::from(plan.status == PlanStatus::Completed);
            stats.tasks += u64::try_from(plan.tasks.len()).unwrap_or(u64::MAX);
            let completed = plan.tasks.iter().filter(|task| task.status == TaskStatus::Completed).count();
            stats.completed_tasks += u64::try_from(completed).unwrap_or(u64::MAX);
            stats.sessions += u64::try_from(plan.sessions.len()).unwrap_or(u64::MAX);
            stats.resumes += plan.resumes;
            stats.failed_resumes += plan.failed_resumes;
            stats.expired_sessions += plan.expired;
            stats.retries += plan.retries;
            total.add(&Self::metrics(log, &plan, prices)?.total);
        }
        // Counts, as floats for ratios; exact well past any real number of plans.
        let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        stats.tasks_per_session = ratio(stats.completed_tasks, stats.sessions);
        stats.resume_success_rate = ratio(stats.resumes.saturating_sub(stats.failed_resumes), stats.resumes);
        stats.cost_usd = total.cost_usd;
        stats.cost_per_task_usd = total.cost_usd.zip(ratio(1, stats.completed_tasks)).map(|(usd, share)| usd * share);
        stats.total_tokens = total.total_tokens;
        stats.unpriced_models = total.unpriced_models;
        Ok(stats)
    }

    fn view(log: &Log) -> Result<cclog_engine::ProjectionView> {
        log.projection(NAME).ok_or(Error::NotOpen(NAME))
    }

    /// One plan's record.
    pub fn get(log: &Log, plan: &str) -> Result<Option<PlanRecord>> {
        Self::view(log)?.get(&plan_key(plan))?.map(|bytes| decode(&bytes)).transpose()
    }

    /// Every plan, by id.
    pub fn all(log: &Log) -> Result<Vec<PlanRecord>> {
        Self::view(log)?.scan_prefix(b"P").map(|item| decode(&item?.1)).collect()
    }

    /// The plan and task a run ran, if it was a plan's.
    pub fn task_of_run(log: &Log, run: &str) -> Result<Option<(String, String)>> {
        Self::view(log)?.get(&run_key(run))?.map(|bytes| decode(&bytes)).transpose()
    }

    /// The plan as given, read from its `plan.created` event.
    pub fn spec(log: &Log, record: &PlanRecord) -> Result<PlanSpec> {
        events::decode_at(log, record.created_seq, plan::KIND_CREATED, &format!("plan {}", record.id))
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|error| Error::Damaged { projection: NAME, detail: error.to_string() })
}
