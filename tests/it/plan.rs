//! Plan sessions. The `plans` projection: any sequence of plan events, with reopens, folds
//! into what a plain model says, and a rebuild folds the same state. A plan's feed, paged
//! and then live, is exactly its steps and its tasks' runs' messages. And plans run by the
//! real Claude Code CLI against the fake API, in-process and through `cclog serve`.

use std::collections::BTreeMap;

use cclog_engine::NewEvent;
use cclog_projections::events::encode;
use cclog_projections::events::plan::{
    self, PlanEnd, PlanOutcome, PlanSpec, Resumed, SessionChange, SessionEvent, TaskChange, TaskEvent, TaskOptions,
    TaskSpec,
};
use cclog_projections::plans::{PlanRegistry, PlanStatus, TaskStatus};
use proptest::prelude::*;

use crate::support::{dump, open};

#[derive(Debug, Clone)]
enum Op {
    Create { plan: u8, tasks: u8 },
    Session { plan: u8, event: u8, session: Option<u8> },
    Task { plan: u8, task: u8, event: u8, run: u8, flag: bool },
    End { plan: u8, outcome: u8 },
    Resume { plan: u8 },
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..2u8, 1..4u8).prop_map(|(plan, tasks)| Op::Create { plan, tasks }),
        4 => (0..2u8, 0..4u8, proptest::option::weighted(0.8, 0..3u8)).prop_map(|(plan, event, session)| Op::Session { plan, event, session }),
        6 => (0..2u8, 0..4u8, 0..5u8, 0..6u8, any::<bool>()).prop_map(|(plan, task, event, run, flag)| Op::Task { plan, task, event, run, flag }),
        1 => (0..2u8, 0..3u8).prop_map(|(plan, outcome)| Op::End { plan, outcome }),
        1 => (0..2u8).prop_map(|plan| Op::Resume { plan }),
        1 => Just(Op::Reopen),
    ]
}

fn spec(plan: &str, tasks: u8) -> PlanSpec {
    PlanSpec {
        id: plan.to_string(),
        cwd: "/p".into(),
        defaults: TaskOptions::default(),
        tasks: (0..tasks)
            .map(|n| TaskSpec {
                id: format!("t{n}"),
                prompt: format!("do {n}"),
                kind: None,
                options: TaskOptions::default(),
            })
            .collect(),
        ttl_ms: 3_600_000,
        max_session_retries: 2,
        max_task_retries: 0,
        continue_on_error: false,
    }
}

/// What the registry should say of a task: status, runs, session, fallback, retries.
#[derive(Debug, Clone, PartialEq)]
struct ModelTask {
    status: TaskStatus,
    runs: Vec<String>,
    session: Option<String>,
    fallback: bool,
    retries: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct ModelPlan {
    status: PlanStatus,
    tasks: Vec<(String, ModelTask)>,
    session: Option<String>,
    sessions: Vec<String>,
    counts: [u64; 6], // resumes, failed resumes, expired, changed, retries, resumed
    events: u64,
}

const SESSION_EVENTS: [SessionEvent; 4] =
    [SessionEvent::Assigned, SessionEvent::Changed, SessionEvent::Expired, SessionEvent::Replaced];
const OUTCOMES: [PlanOutcome; 3] = [PlanOutcome::Completed, PlanOutcome::Failed, PlanOutcome::Cancelled];

fn task_event(event: u8, run: &str, flag: bool) -> TaskEvent {
    match event {
        0 => TaskEvent::Started { run: run.to_string(), fallback: flag },
        1 => TaskEvent::Completed { run: run.to_string() },
        2 => TaskEvent::Failed { run: flag.then(|| run.to_string()), reason: "broke".into() },
        3 => TaskEvent::Retried { new_session: flag, reason: "again".into() },
        _ => TaskEvent::Skipped { reason: "not needed".into() },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_plan_registry_is_what_a_model_of_the_events_says(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let mut model: BTreeMap<String, ModelPlan> = BTreeMap::new();
        let mut runs: BTreeMap<String, (String, String)> = BTreeMap::new();
        for op in &ops {
            let (plan, kind, payload) = match op {
                Op::Reopen => {
                    drop(log);
                    log = open(dir.path());
                    continue;
                }
                Op::Create { plan, tasks } => {
                    let id = format!("plan-{plan}");
                    (id.clone(), plan::KIND_CREATED, encode(&spec(&id, *tasks)).unwrap())
                }
                Op::Session { plan, event, session } => {
                    let change = SessionChange { event: SESSION_EVENTS[usize::from(*event)], session: session.map(|s| format!("s{s}")), reason: None };
                    (format!("plan-{plan}"), plan::KIND_SESSION, encode(&change).unwrap())
                }
                Op::Task { plan, task, event, run, flag } => {
                    let change = TaskChange { task: format!("t{task}"), event: task_event(*event, &format!("run-{plan}-{run}"), *flag) };
                    (format!("plan-{plan}"), plan::KIND_TASK, encode(&change).unwrap())
                }
                Op::End { plan, outcome } => {
                    let end = PlanEnd { outcome: OUTCOMES[usize::from(*outcome)], reason: None };
                    (format!("plan-{plan}"), plan::KIND_ENDED, encode(&end).unwrap())
                }
                Op::Resume { plan } => (format!("plan-{plan}"), plan::KIND_RESUMED, encode(&Resumed::default()).unwrap()),
            };
            log.append_blocking(vec![NewEvent::new(plan::plan_stream(&plan), kind, payload)]).unwrap();
            if let Op::Create { tasks, .. } = op {
                let fresh = ModelTask { status: TaskStatus::Pending, runs: vec![], session: None, fallback: false, retries: 0 };
                model.insert(plan.clone(), ModelPlan {
                    status: PlanStatus::Running,
                    tasks: (0..*tasks).map(|n| (format!("t{n}"), fresh.clone())).collect(),
                    session: None,
                    sessions: vec![],
                    counts: [0; 6],
                    events: 1,
                });
                continue;
            }
            let Some(known) = model.get_mut(&plan) else { continue };
            known.events += 1;
            match op {
                Op::Session { event, session, .. } => match SESSION_EVENTS[usize::from(*event)] {
                    SessionEvent::Assigned | SessionEvent::Changed => {
                        if *event == 1 { known.counts[3] += 1; }
                        let session = session.map(|s| format!("s{s}"));
                        if let Some(session) = &session {
                            if !known.sessions.contains(session) { known.sessions.push(session.clone()); }
                        }
                        known.session = session;
                    }
                    SessionEvent::Expired => { known.counts[2] += 1; known.session = None; }
                    SessionEvent::Replaced => { known.counts[1] += 1; known.session = None; }
                },
                Op::Task { plan: p, task, event, run, flag } => {
                    let session = known.session.clone();
                    let Some((_, entry)) = known.tasks.iter_mut().find(|(id, _)| *id == format!("t{task}")) else { continue };
                    let run = format!("run-{p}-{run}");
                    match event {
                        0 => {
                            entry.status = TaskStatus::Running;
                            entry.fallback = *flag;
                            entry.runs.push(run.clone());
                            runs.insert(run, (plan.clone(), format!("t{task}")));
                            if session.is_some() { known.counts[0] += 1; }
                        }
                        1 => { entry.status = TaskStatus::Completed; entry.session = session; }
                        2 => { entry.status = TaskStatus::Failed; entry.session = session; }
                        3 => { entry.status = TaskStatus::Pending; entry.retries += 1; known.counts[4] += 1; }
                        _ => entry.status = TaskStatus::Skipped,
                    }
                }
                Op::End { outcome, .. } => {
                    known.status = [PlanStatus::Completed, PlanStatus::Failed, PlanStatus::Cancelled][usize::from(*outcome)];
                    for (_, task) in &mut known.tasks {
                        if task.status == TaskStatus::Running { task.status = TaskStatus::Failed; }
                    }
                }
                Op::Resume { .. } => { known.status = PlanStatus::Running; known.counts[5] += 1; }
                Op::Create { .. } | Op::Reopen => unreachable!(),
            }
        }
        let registry = PlanRegistry::all(&log).unwrap();
        prop_assert_eq!(registry.len(), model.len());
        for record in &registry {
            let expected = &model[&record.id];
            prop_assert_eq!(record.status, expected.status);
            prop_assert_eq!(&record.session, &expected.session);
            prop_assert_eq!(&record.sessions, &expected.sessions);
            let counts = [record.resumes, record.failed_resumes, record.expired, record.changed, record.retries, record.resumed];
            prop_assert_eq!(counts, expected.counts);
            prop_assert_eq!(record.events, expected.events);
            let tasks: Vec<(String, ModelTask)> = record.tasks.iter().map(|task| (task.id.clone(), ModelTask {
                status: task.status, runs: task.runs.clone(), session: task.session.clone(), fallback: task.fallback, retries: task.retries,
            })).collect();
            prop_assert_eq!(&tasks, &expected.tasks);
            prop_assert_eq!(PlanRegistry::spec(&log, record).unwrap().id, record.id.clone());
        }
        for (run, owner) in &runs {
            let found = PlanRegistry::task_of_run(&log, run).unwrap();
            prop_assert_eq!(found.as_ref(), Some(owner));
        }
        let incremental = dump(&log, "plans");
        let reports = log.rebuild_blocking().unwrap();
        prop_assert!(reports.iter().all(|report| report.equal_to_previous), "{:?}", reports);
        prop_assert_eq!(incremental, dump(&log, "plans"));
    }
}

/// One event of the feed property: a task of plan `p` starts run `r`, a message of run `r`,
/// another step of `p`, or something of another plan or stream.
#[derive(Debug, Clone)]
enum FeedOp {
    Start(u8),
    Message(u8),
    Session,
    Elsewhere(u8),
}

fn arb_feed_op() -> impl Strategy<Value = FeedOp> {
    prop_oneof![
        2 => (0..4u8).prop_map(FeedOp::Start),
        6 => (0..4u8).prop_map(FeedOp::Message),
        1 => Just(FeedOp::Session),
        2 => (0..3u8).prop_map(FeedOp::Elsewhere),
    ]
}

fn feed_event(op: &FeedOp, started: &mut std::collections::BTreeSet<u8>) -> Option<NewEvent> {
    use cclog_projections::events::{run_stream, KIND_RUN_MESSAGE};
    Some(match op {
        FeedOp::Start(run) => {
            if !started.insert(*run) {
                return None;
            }
            let change = TaskChange {
                task: format!("t{run}"),
                event: TaskEvent::Started { run: format!("r{run}"), fallback: false },
            };
            NewEvent::new(plan::plan_stream("p"), plan::KIND_TASK, encode(&change).unwrap())
        }
        FeedOp::Message(run) => {
            NewEvent::new(run_stream(&format!("r{run}")), KIND_RUN_MESSAGE, format!("{{\"run\":{run}}}").into_bytes())
        }
        FeedOp::Session => {
            let change = SessionChange { event: SessionEvent::Assigned, session: Some("s".into()), reason: None };
            NewEvent::new(plan::plan_stream("p"), plan::KIND_SESSION, encode(&change).unwrap())
        }
        FeedOp::Elsewhere(0) => {
            NewEvent::new(plan::plan_stream("q"), plan::KIND_RESUMED, encode(&Resumed::default()).unwrap())
        }
        FeedOp::Elsewhere(1) => NewEvent::new("run/r9", cclog_projections::events::KIND_RUN_MESSAGE, b"{}".to_vec()),
        FeedOp::Elsewhere(_) => NewEvent::new("run/r0", "run.other", b"{}".to_vec()),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_plans_feed_is_its_steps_and_its_runs_messages_from_where_it_starts(
        ops in proptest::collection::vec(arb_feed_op(), 1..80),
        split in 0..80usize,
        from in 0..40u64,
        limit in 1..6usize,
    ) {
        use cclog_projections::events::KIND_RUN_MESSAGE;
        use cclog_projections::plan_feed::{FeedItem, PlanFeed};
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut started = std::collections::BTreeSet::new();
        let events: Vec<NewEvent> = ops.iter().filter_map(|op| feed_event(op, &mut started)).collect();
        let split = split.min(events.len());
        for event in &events[..split] {
            log.append_blocking(vec![event.clone()]).unwrap();
        }
        // History a page at a time, then the rest as a subscriber sees it.
        let mut feed = PlanFeed::new("p", from);
        let mut items = Vec::new();
        loop {
            let (page, more) = feed.page(&log, limit).unwrap();
            items.extend(page);
            if !more {
                break;
            }
        }
        for event in &events[split..] {
            log.append_blocking(vec![event.clone()]).unwrap();
        }
        for event in log.range(feed.next()) {
            let event = event.unwrap();
            if feed.wants(&event) {
                items.extend(feed.take(&log, &event).unwrap());
            }
        }
        // The model: the plan's events from `from` on, and the messages from `from` on of
        // every run a task started from `from` on.
        let all: Vec<cclog_engine::Event> = log.range(0).map(Result::unwrap).collect();
        let runs: std::collections::BTreeSet<String> = all.iter()
            .filter(|event| event.seq() >= from && event.stream() == "plan/p")
            .filter_map(|event| plan::PlanStep::of(event).unwrap()?.started_run().map(|(_, run)| run.to_string()))
            .collect();
        let expected: Vec<u64> = all.iter()
            .filter(|event| event.seq() >= from)
            .filter(|event| event.stream() == "plan/p"
                || (event.kind() == KIND_RUN_MESSAGE && runs.iter().any(|run| event.stream() == format!("run/{run}"))))
            .map(cclog_engine::Event::seq)
            .collect();
        let mut seqs: Vec<u64> = items.iter().map(FeedItem::seq).collect();
        let mut by_run: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut steps = Vec::new();
        for item in &items {
            match item {
                FeedItem::Step { seq, .. } => steps.push(*seq),
                FeedItem::Message { seq, run, task, message } => {
                    prop_assert_eq!(task, &format!("t{}", &run[1..]));
                    prop_assert_eq!(message, &log.get(*seq).unwrap().unwrap().payload);
                    by_run.entry(run.clone()).or_default().push(*seq);
                }
            }
        }
        prop_assert!(steps.windows(2).all(|pair| pair[0] < pair[1]), "steps in order: {:?}", steps);
        for (run, seqs) in &by_run {
            prop_assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{} in order: {:?}", run, seqs);
        }
        seqs.sort_unstable();
        prop_assert_eq!(seqs, expected);
    }
}

mod running {
    //! Plans run by `cclog plan run` with the real Claude Code CLI against the fake API.

    use std::path::Path;
    use std::time::Duration;

    use serde_json::{json, Value};

    use crate::claude_cli::claude_bin;
    use crate::fake_api::{FakeApi, Reply};
    use crate::serve::claude_env;
    use crate::support::{cclog_command, verify_intact};

    /// Replies by task, the later tasks first (a fallback prompt quotes the earlier ones).
    fn three_steps(project: &Path, second: Vec<Reply>) -> FakeApi {
        let file = project.join("a.txt");
        FakeApi::by_prompt(vec![
            (
                "third-step",
                vec![
                    Reply::ToolUse { name: "Read".into(), input: json!({"file_path": file}) },
                    Reply::Text("Task three read the file.".into()),
                ],
            ),
            ("second-step", second),
            (
                "first-step",
                vec![
                    Reply::ToolUse {
                        name: "Write".into(),
                        input: json!({"file_path": file, "content": "alpha beta\n"}),
                    },
                    Reply::Text("Task one wrote a.txt.".into()),
                ],
            ),
        ])
    }

    fn plan_file(dir: &Path, project: &Path, ttl: &str) -> std::path::PathBuf {
        let path = dir.join("plan.toml");
        let text = format!(
            "id = \"p1\"\ncwd = {:?}\nttl = \"{ttl}\"\nallowedTools = [\"Write\", \"Read\"]\n\
             [[tasks]]\nid = \"one\"\nprompt = \"first-step: write a.txt\"\ntype = \"create_file\"\n\
             [[tasks]]\nid = \"two\"\nprompt = \"second-step: think\"\n\
             [[tasks]]\nid = \"three\"\nprompt = \"third-step: read a.txt\"\n",
            project.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn plan_command(data: &Path, env: &[(&str, String)], args: &[&str]) -> std::process::Command {
        let mut command = cclog_command(data, &[&["plan"], args].concat());
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    fn show(data: &Path) -> Value {
        crate::support::cclog_json(data, &["plan", "show", "p1", "--json"])["plan"].clone()
    }

    /// What `plan run --json` printed on stdout: the tasks' messages, then the plan.
    fn messages_and_plan(stdout: &[u8]) -> (Vec<Value>, Value) {
        let mut lines: Vec<Value> = String::from_utf8_lossy(stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
            .collect();
        let plan = lines.pop().expect("the plan, last");
        (lines, plan)
    }

    /// The text of every user prompt of a request.
    fn prompts(request: &Value) -> String {
        request["messages"].to_string()
    }

    #[test]
    fn a_three_task_plan_runs_in_one_session_that_remembers_the_earlier_tasks() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let api = three_steps(project.path(), vec![Reply::Text("Task two thought.".into())]);
        let env = claude_env(&api, home.path(), &claude_bin());
        let file = plan_file(data.path(), project.path(), "1h");
        let output = plan_command(data.path(), &env, &["run", file.to_str().unwrap(), "--json"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let progress = String::from_utf8_lossy(&output.stderr);
        assert!(progress.contains("task one: completed") && progress.contains("task three: completed"), "{progress}");
        // Each task's messages stream on stdout as `cclog run` prints them; the plan last.
        let (messages, record) = messages_and_plan(&output.stdout);
        assert_eq!(record["status"], "Completed", "{record}");
        let results: Vec<&Value> = messages.iter().filter(|message| message["type"] == "result").collect();
        assert_eq!(results.len(), 3, "one result per task: {messages:?}");
        assert!(results[0]["result"].as_str().unwrap().contains("Task one wrote a.txt."), "{:?}", results[0]);
        assert!(messages.iter().any(|message| message.to_string().contains("alpha beta")), "task three's read");

        let plan = show(data.path());
        assert_eq!(plan["status"], "Completed", "{plan}");
        assert_eq!(plan["sessions"].as_array().unwrap().len(), 1, "one session for every task: {plan}");
        let session = plan["sessions"][0].clone();
        assert!(plan["tasks"].as_array().unwrap().iter().all(|task| task["session"] == session), "{plan}");
        assert_eq!((plan["resumes"].as_u64(), plan["failed_resumes"].as_u64()), (Some(2), Some(0)), "{plan}");
        // Context is kept on Claude's side: the later tasks' requests carry the earlier turns.
        let requests = api.requests();
        let third = requests.iter().rev().find(|request| prompts(request).contains("third-step")).unwrap();
        let text = prompts(third);
        assert!(
            text.contains("first-step") && text.contains("second-step") && text.contains("Task two thought."),
            "{text}"
        );
        let read = requests.iter().find(|request| {
            let last = request["messages"].as_array().unwrap().last().unwrap().to_string();
            last.contains("tool_result") && last.contains("alpha beta")
        });
        assert!(read.is_some(), "task three read what task one wrote");
        // Per task and in all: tokens, cost and wall time, from its runs.
        let metrics = crate::support::cclog_json(data.path(), &["plan", "show", "p1", "--json"])["metrics"].clone();
        let tasks = metrics["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 3, "{metrics}");
        for task in tasks {
            assert!(task["total_tokens"].as_u64().unwrap() > 0, "{task}");
            assert!(task["cost_usd"].as_f64().unwrap() > 0.0, "{task}");
            assert!(task["duration_ms"].as_u64().unwrap() > 0, "{task}");
        }
        let tokens: u64 = tasks.iter().map(|task| task["total_tokens"].as_u64().unwrap()).sum();
        assert_eq!(metrics["total"]["total_tokens"], tokens, "{metrics}");
        let text = crate::support::cclog(data.path(), &["plan", "show", "p1"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.lines().any(|line| line.trim_start().starts_with("total") && line.contains(" tokens  $")),
            "{text}"
        );
        verify_intact(data.path());
    }

    #[test]
    fn with_claude_code_1_0_which_resumes_into_a_new_session_the_plan_follows_it() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let api = FakeApi::by_prompt(vec![
            ("third-step", vec![Reply::Text("Task three done.".into())]),
            ("second-step", vec![Reply::Text("Task two remembers.".into())]),
            ("first-step", vec![Reply::Text("Task one done.".into())]),
        ]);
        let env = claude_env(&api, home.path(), &crate::claude_cli::claude_1_0_bin());
        let plan = json!({"id": "p1", "cwd": project.path(), "tasks": [
            {"id": "one", "prompt": "first-step"},
            {"id": "two", "prompt": "second-step"},
            {"id": "three", "prompt": "third-step"},
        ]});
        let path = data.path().join("plan.json");
        std::fs::write(&path, plan.to_string()).unwrap();
        let output = plan_command(data.path(), &env, &["run", path.to_str().unwrap()]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let plan = show(data.path());
        assert_eq!(plan["status"], "Completed", "{plan}");
        // Each resume continued in a new session id; the plan followed each change.
        assert_eq!(plan["changed"], 2, "{plan}");
        let sessions = plan["sessions"].as_array().unwrap().clone();
        assert_eq!(sessions.len(), 3, "{plan}");
        let task_sessions: Vec<&Value> =
            plan["tasks"].as_array().unwrap().iter().map(|task| &task["session"]).collect();
        assert_eq!(task_sessions, sessions.iter().collect::<Vec<_>>(), "{plan}");
        // Task three resumed the session task two ended in, not the first one.
        let runs = crate::support::cclog_json(data.path(), &["runs", "--json"]);
        let third_run = &plan["tasks"][2]["runs"][0];
        let third = runs.as_array().unwrap().iter().find(|run| &run["id"] == third_run).unwrap();
        assert_eq!(third["resumed_session_id"], sessions[1], "{third}");
        assert_eq!(plan["tasks"][2]["fallback"], false, "{plan}");
        // And the conversation went on: task three's request carries both earlier turns.
        let requests = api.requests();
        let request = requests.iter().rev().find(|request| prompts(request).contains("third-step")).unwrap();
        let text = prompts(request);
        assert!(text.contains("first-step") && text.contains("Task two remembers."), "{text}");
        let history = crate::support::cclog(data.path(), &["log", "--stream", "plan/p1", "--json"]);
        let history = String::from_utf8_lossy(&history.stdout);
        assert_eq!(history.matches("\"kind\":\"plan.session\"").count(), 3, "assigned, changed, changed: {history}");
        // The fork tree names the plan that ran each of its sessions.
        let tree = crate::support::cclog_json(data.path(), &["tree", sessions[2].as_str().unwrap(), "--json"]);
        fn owners(node: &Value, found: &mut Vec<Value>) {
            found.push(node["owner"].clone());
            for child in node["children"].as_array().unwrap() {
                owners(child, found);
            }
        }
        let mut found = Vec::new();
        owners(&tree[0], &mut found);
        assert!(!found.is_empty() && found.iter().all(|owner| owner == "plan p1"), "{tree}");
    }

    #[test]
    fn an_expired_session_is_replaced_by_a_new_one_told_what_was_done() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let file = project.path().join("a.txt");
        // Task two fails the first time (one turn allowed, and the reply is a tool call), and
        // succeeds once its prompt carries the fallback context.
        let api = FakeApi::by_prompt(vec![
            ("What was done so far", vec![Reply::Text("Task two thought.".into())]),
            ("third-step", vec![Reply::Text("Task three done.".into())]),
            (
                "second-step",
                vec![Reply::ToolUse { name: "Write".into(), input: json!({"file_path": file, "content": "x"}) }],
            ),
            (
                "first-step",
                vec![
                    Reply::ToolUse {
                        name: "Write".into(),
                        input: json!({"file_path": file, "content": "alpha beta\n"}),
                    },
                    Reply::Text("Task one wrote a.txt.".into()),
                ],
            ),
        ]);
        let env = claude_env(&api, home.path(), &claude_bin());
        // The TTL is the global one: CCLOG_PLAN_TTL.
        let env: Vec<(&str, String)> = env.into_iter().chain([("CCLOG_PLAN_TTL", "1s".to_string())]).collect();
        let plan = json!({"id": "p1", "cwd": project.path(), "allowedTools": ["Write", "Read"], "tasks": [
            {"id": "one", "prompt": "first-step: write a.txt"},
            {"id": "two", "prompt": "second-step: think", "maxTurns": 1},
            {"id": "three", "prompt": "third-step: finish"},
        ]});
        let path = data.path().join("plan.json");
        std::fs::write(&path, plan.to_string()).unwrap();
        let output = plan_command(data.path(), &env, &["run", path.to_str().unwrap()]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "task two fails: {}", String::from_utf8_lossy(&output.stderr));
        // The session outlives its TTL; the resume starts a new one, told what was done.
        std::thread::sleep(Duration::from_millis(1500));
        let output = plan_command(data.path(), &env, &["resume", "p1"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let plan = show(data.path());
        assert_eq!(plan["status"], "Completed", "{plan}");
        assert_eq!(plan["expired"], 1, "{plan}");
        assert_eq!(plan["sessions"].as_array().unwrap().len(), 2, "{plan}");
        assert_eq!(plan["tasks"][1]["fallback"], true, "{plan}");
        // Task three resumed the new session (well within its TTL).
        assert_eq!(plan["tasks"][2]["session"], plan["sessions"][1], "{plan}");
        assert_eq!(plan["tasks"][2]["fallback"], false, "{plan}");
        let requests = api.requests();
        let second = requests.iter().find(|request| prompts(request).contains("What was done so far")).unwrap();
        let text = prompts(second);
        assert!(text.contains("first-step: write a.txt") && text.contains("second-step: think"), "{text}");
        assert!(text.contains("Task one wrote a.txt.") && text.contains("a.txt"), "{text}");
        let history = crate::support::cclog(data.path(), &["log", "--stream", "plan/p1", "--json"]);
        let history = String::from_utf8_lossy(&history.stdout);
        // Assigned, expired, assigned.
        assert_eq!(history.matches("\"kind\":\"plan.session\"").count(), 3, "{history}");
    }

    #[test]
    fn a_plan_killed_mid_task_resumes_there_and_survives_its_lost_session() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let api = three_steps(project.path(), vec![Reply::Wait(Duration::from_secs(4))]);
        let env = claude_env(&api, home.path(), &claude_bin());
        let file = plan_file(data.path(), project.path(), "1h");
        let mut child = plan_command(data.path(), &env, &["run", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Killed while task two runs (its progress line says it started).
        let stderr = child.stderr.take().unwrap();
        let (started, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("task two: started") {
                    let _ = started.send(());
                }
            }
        });
        seen.recv_timeout(Duration::from_secs(90)).expect("task two started");
        child.kill().unwrap();
        child.wait().unwrap();
        // Its session's transcript is lost meanwhile.
        for entry in crate::support::files_under(&home.path().join(".claude/projects")) {
            if entry.extension().is_some_and(|extension| extension == "jsonl") {
                std::fs::remove_file(entry).unwrap();
            }
        }
        let output = plan_command(data.path(), &env, &["resume", "p1"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let plan = show(data.path());
        assert_eq!(plan["status"], "Completed", "{plan}");
        assert_eq!(plan["tasks"][0]["runs"].as_array().unwrap().len(), 1, "task one ran once: {plan}");
        assert_eq!(plan["failed_resumes"], 1, "{plan}");
        assert_eq!(plan["tasks"][1]["fallback"], true, "{plan}");
        assert_eq!(plan["sessions"].as_array().unwrap().len(), 2, "{plan}");
        let stats = crate::support::cclog_json(data.path(), &["plan", "stats", "--json"]);
        assert_eq!(
            (stats["failed_resumes"].as_u64(), stats["completed_tasks"].as_u64()),
            (Some(1), Some(3)),
            "{stats}"
        );
        assert_eq!(stats["sessions"], 2, "{stats}");
        assert!(stats["cost_per_task_usd"].as_f64().is_some_and(|usd| usd > 0.0), "{stats}");
        verify_intact(data.path());
    }

    #[test]
    fn through_the_server_a_failed_task_a_cancel_and_a_server_killed_mid_plan() {
        use crate::serve::Server;
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let file = project.path().join("a.txt");
        let api = FakeApi::by_prompt(vec![
            ("slow-step", vec![Reply::Wait(Duration::from_secs(4))]),
            ("endless-step", vec![Reply::Wait(Duration::from_secs(60))]),
            // One turn allowed, and the reply is a tool call: the run ends in error_max_turns.
            (
                "failing-step",
                vec![Reply::ToolUse { name: "Write".into(), input: json!({"file_path": file, "content": "x"}) }],
            ),
        ]);
        let env = claude_env(&api, home.path(), &claude_bin());
        let env_refs: Vec<(&str, String)> = env.iter().map(|(key, value)| (*key, value.clone())).collect();
        let server = Server::start(data.path(), &env_refs, &["--no-archive", "--plan-ttl", "5m"]);
        let cwd = project.path().display().to_string();

        // A task failing on its own merits, with continueOnError: the plan goes on, then fails.
        let plan = json!({"id": "goes-on", "cwd": cwd, "continueOnError": true, "allowedTools": ["Write"], "tasks": [
            {"id": "one", "prompt": "say hello"},
            {"id": "two", "prompt": "failing-step", "maxTurns": 1},
            {"id": "three", "prompt": "say bye"},
        ]});
        let path = data.path().join("goes-on.json");
        std::fs::write(&path, plan.to_string()).unwrap();
        let output = plan_command(data.path(), &[], &["run", path.to_str().unwrap(), "--json"]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
        let (messages, record) = messages_and_plan(&output.stdout);
        let results = messages.iter().filter(|message| message["type"] == "result").count();
        assert_eq!(results, 3, "each task's messages came through the server: {messages:?}");
        let statuses: Vec<&str> =
            record["tasks"].as_array().unwrap().iter().map(|task| task["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["Completed", "Failed", "Completed"], "{record}");
        assert_eq!(record["status"], "Failed");
        let progress = String::from_utf8_lossy(&output.stderr);
        assert!(progress.contains("task two: failed") && progress.contains("task three: completed"), "{progress}");
        // The plan's stream: its steps and its tasks' messages in log order, then `end`.
        let (status, stream) = server.call("GET", "/api/plans/goes-on/stream", None);
        assert_eq!(status, 200, "{stream}");
        let events = sse_events(&stream);
        let streamed: Vec<&Value> = events.iter().filter(|(name, _)| name == "message").map(|(_, data)| data).collect();
        assert_eq!(streamed.len(), messages.len(), "the stream and the CLI carry the same messages");
        let mut running = None;
        for (name, data) in &events {
            if let Some(run) = data.pointer("/step/change/event/Started/run") {
                running = Some((data["step"]["change"]["task"].clone(), run.clone()));
            }
            if name == "message" {
                let (task, run) = running.clone().expect("a message after its task's start");
                assert_eq!((&data["task"], &data["run"]), (&task, &run), "{data}");
            }
        }
        let seqs: Vec<u64> = events.iter().filter_map(|(_, data)| data["seq"].as_u64()).collect();
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "in log order: {seqs:?}");
        let (last, ended) = events.last().unwrap();
        assert_eq!((last.as_str(), &ended["status"]), ("end", &json!("Failed")), "{ended}");
        // The server's global TTL applies to a plan that names none.
        let shown = crate::support::cclog_json(data.path(), &["plan", "show", "goes-on", "--json"]);
        assert_eq!(shown["spec"]["ttl_ms"], 300_000, "{}", shown["spec"]);
        // Without it, the plan stops at the failed task.
        let mut stops = plan.clone();
        stops["id"] = json!("stops");
        stops["continueOnError"] = json!(false);
        let (status, stopped) = server.json("POST", "/api/plans", Some(stops));
        assert_eq!(status, 200, "{stopped}");
        let statuses: Vec<&str> =
            stopped["tasks"].as_array().unwrap().iter().map(|task| task["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["Completed", "Failed", "Pending"], "{stopped}");

        // A bad plan: nothing recorded.
        let (status, bad) = server.json(
            "POST",
            "/api/plans",
            Some(json!({"id": "bad", "cwd": cwd, "tasks": [{"id": "a", "prompt": "x", "promt": "y"}]})),
        );
        assert_eq!(status, 400, "{bad}");
        assert!(bad["error"]["message"].as_str().unwrap().contains("promt"), "{bad}");
        assert_eq!(server.json("GET", "/api/plans/bad", None).0, 404);

        // Cancelled while its task runs.
        let endless =
            json!({"id": "endless", "cwd": cwd, "wait": false, "tasks": [{"id": "one", "prompt": "endless-step"}]});
        let (status, started) = server.json("POST", "/api/plans", Some(endless));
        assert_eq!(status, 202, "{started}");
        crate::serve::wait_for("the endless task to run", || {
            server.ok("GET", "/api/plans/endless", None)["tasks"][0]["status"] == "Running"
        });
        let output = plan_command(data.path(), &[], &["cancel", "endless", "--json"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(server.ok("GET", "/api/plans/endless", None)["status"], "Cancelled");

        // The server killed mid-plan and restarted: the resume finishes it, task one once.
        let slow = json!({"id": "slow", "cwd": cwd, "wait": false, "tasks": [
            {"id": "one", "prompt": "say hello"}, {"id": "two", "prompt": "slow-step"}, {"id": "three", "prompt": "say bye"},
        ]});
        assert_eq!(server.json("POST", "/api/plans", Some(slow)).0, 202);
        crate::serve::wait_for("task two to run", || {
            server.ok("GET", "/api/plans/slow", None)["tasks"][1]["status"] == "Running"
        });
        server.kill();
        let server = Server::start(data.path(), &env_refs, &["--no-archive"]);
        let output = plan_command(data.path(), &[], &["resume", "slow", "--json"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        // The resume printed what it ran, and no more: tasks two and three.
        let (messages, _) = messages_and_plan(&output.stdout);
        assert_eq!(messages.iter().filter(|message| message["type"] == "result").count(), 2, "{messages:?}");
        let record = server.ok("GET", "/api/plans/slow", None);
        assert_eq!(record["status"], "Completed", "{record}");
        assert_eq!(record["tasks"][0]["runs"].as_array().unwrap().len(), 1, "{record}");
        assert_eq!(record["resumed"], 1, "{record}");
        let listed = crate::support::cclog_json(data.path(), &["plan", "list", "--json"]);
        assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
        // For people: a table, a row a plan, within 80 columns.
        let table = crate::support::cclog_command(data.path(), &["plan", "list"]).env("COLUMNS", "80").output();
        let table = String::from_utf8(table.unwrap().stdout).unwrap();
        assert!(table.starts_with("PLAN ") && table.lines().count() == 5, "{table}");
        assert!(table.lines().any(|line| line.starts_with("slow ") && line.contains("completed")), "{table}");
        assert!(table.lines().all(|line| line.chars().count() <= 80), "{table}");
        server.stop();
        verify_intact(data.path());
    }

    /// The events of an SSE body: each `(name, data as JSON)`.
    fn sse_events(body: &str) -> Vec<(String, Value)> {
        body.split("\n\n")
            .filter_map(|event| {
                let name = event.lines().find_map(|line| line.strip_prefix("event:"))?.trim().to_string();
                let data: Vec<&str> =
                    event.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
                Some((name, serde_json::from_str(&data.join("\n")).unwrap_or_else(|error| panic!("{error}: {event}"))))
            })
            .collect()
    }
}
