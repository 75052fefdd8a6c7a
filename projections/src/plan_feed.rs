//! A plan's feed: the plan's own events (each a [`PlanStep`]) and the messages of every run
//! its tasks started, in log order, from a given seq on — what `GET /api/plans/:id/stream`
//! sends and what `cclog plan run` prints. History is read through the stream indexes (the
//! plan's stream and each of its runs'), a page at a time; new events come from a log
//! subscription and go through [`PlanFeed::take`].
//!
//! A task's run is known from the plan's `task started` event, which the executor records
//! once the run has begun, so a run's first messages can precede it in the log. When the
//! feed learns of a run, it reads that run's messages it has passed over (from the feed's
//! start) and yields them before going on: nothing of a run is lost, and a run's messages
//! stay in their order.

use std::collections::BTreeMap;

use cclog_engine::{Event, Log};

use crate::events::plan::{self, PlanStep};
use crate::events::{run_stream, KIND_RUN_MESSAGE};
use crate::plans::{PlanRecord, PlanRegistry, PlanStatus};
use crate::Result;

/// What a plan's feed yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    /// One of the plan's own events.
    Step { seq: u64, at_us: u64, step: PlanStep },
    /// A message (stream-json, as the CLI wrote it) of the run a task started.
    Message { seq: u64, task: String, run: String, message: Vec<u8> },
}

impl FeedItem {
    pub fn seq(&self) -> u64 {
        match self {
            FeedItem::Step { seq, .. } | FeedItem::Message { seq, .. } => *seq,
        }
    }
}

/// One plan's feed, from `origin` on.
#[derive(Debug, Clone)]
pub struct PlanFeed {
    plan: String,
    stream: String,
    origin: u64,
    /// Every event before this has been yielded or passed over.
    next: u64,
    /// Run stream → (run, task), for every run a task of the plan started.
    runs: BTreeMap<String, (String, String)>,
}

impl PlanFeed {
    /// The feed of `plan` from seq `from` on.
    pub fn new(plan: &str, from: u64) -> PlanFeed {
        PlanFeed {
            plan: plan.to_string(),
            stream: plan::plan_stream(plan),
            origin: from,
            next: from,
            runs: BTreeMap::new(),
        }
    }

    /// Where the next page, or a subscription for what comes after history, starts.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The next page of history, at most about `limit` items of each stream, up to the
    /// durable head; `true` with it while more history is left.
    pub fn page(&mut self, log: &Log, limit: usize) -> Result<(Vec<FeedItem>, bool)> {
        let head = log.len();
        let from = self.next;
        let limit = limit.max(1);
        // The first seq past what every stream read has given in full: a stream cut at
        // `limit` may have more beyond its last event, so nothing past that is certain.
        let mut certain_until = head;
        let mut read = |stream: &str| -> Result<Vec<Event>> {
            let events: Vec<Event> = log
                .stream(stream, from)
                .take_while(|event| event.as_ref().map_or(true, |event| event.seq() < head))
                .take(limit)
                .collect::<cclog_engine::Result<_>>()?;
            if events.len() >= limit {
                if let Some(last) = events.last() {
                    certain_until = certain_until.min(last.seq() + 1);
                }
            }
            Ok(events)
        };
        let plan_events = read(&self.stream.clone())?;
        let mut items = Vec::new();
        for event in &plan_events {
            if let Some(step) = PlanStep::of(event)? {
                if let Some((task, run)) = step.started_run() {
                    let stream = run_stream(run);
                    if !self.runs.contains_key(&stream) {
                        // What of it this feed passed over before it knew the run.
                        items.extend(self.run_messages(log, &stream, run, task, self.origin, from)?);
                        self.runs.insert(stream, (run.to_string(), task.to_string()));
                    }
                }
                items.push(FeedItem::Step { seq: event.seq(), at_us: event.header.ts_us, step });
            }
        }
        for (stream, (run, task)) in &self.runs {
            for event in read(stream)? {
                if event.kind() == KIND_RUN_MESSAGE {
                    items.push(message(&event, run, task));
                }
            }
        }
        let more = certain_until < head;
        items.retain(|item| item.seq() < certain_until || item.seq() < from);
        items.sort_by_key(FeedItem::seq);
        self.next = certain_until.max(from);
        Ok((items, more))
    }

    /// Whether `event` may be this feed's (cheap; [`PlanFeed::take`] decides).
    pub fn wants(&self, event: &Event) -> bool {
        event.seq() >= self.next && (event.stream() == self.stream || self.runs.contains_key(event.stream()))
    }

    /// What a new event, taken in log order after history, adds to the feed: nothing, or
    /// the step or message it is — a task's start preceded by its run's earlier messages.
    pub fn take(&mut self, log: &Log, event: &Event) -> Result<Vec<FeedItem>> {
        if event.seq() < self.next {
            return Ok(Vec::new());
        }
        self.next = event.seq() + 1;
        if let Some((run, task)) = self.runs.get(event.stream()) {
            return Ok(if event.kind() == KIND_RUN_MESSAGE { vec![message(event, run, task)] } else { Vec::new() });
        }
        if event.stream() != self.stream {
            return Ok(Vec::new());
        }
        let Some(step) = PlanStep::of(event)? else { return Ok(Vec::new()) };
        let mut items = Vec::new();
        if let Some((task, run)) = step.started_run() {
            let stream = run_stream(run);
            if !self.runs.contains_key(&stream) {
                items.extend(self.run_messages(log, &stream, run, task, self.origin, event.seq())?);
                self.runs.insert(stream, (run.to_string(), task.to_string()));
            }
        }
        items.push(FeedItem::Step { seq: event.seq(), at_us: event.header.ts_us, step });
        Ok(items)
    }

    /// The plan, once the step at `seq` has ended it and nothing on its stream follows (a
    /// resume after an end is part of the same feed).
    pub fn ended(&self, log: &Log, seq: u64) -> Result<Option<PlanRecord>> {
        let record = PlanRegistry::get(log, &self.plan)?;
        Ok(record.filter(|record| record.last_seq == seq && record.status != PlanStatus::Running))
    }

    /// The messages of `run` with `from <= seq < before`.
    fn run_messages(
        &self,
        log: &Log,
        stream: &str,
        run: &str,
        task: &str,
        from: u64,
        before: u64,
    ) -> Result<Vec<FeedItem>> {
        let mut items = Vec::new();
        for event in log.stream(stream, from) {
            let event = event?;
            if event.seq() >= before {
                break;
            }
            if event.kind() == KIND_RUN_MESSAGE {
                items.push(message(&event, run, task));
            }
        }
        Ok(items)
    }
}

fn message(event: &Event, run: &str, task: &str) -> FeedItem {
    FeedItem::Message { seq: event.seq(), task: task.to_string(), run: run.to_string(), message: event.payload.clone() }
}
