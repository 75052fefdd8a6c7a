//! Property tests of transcript import: any split of a file into appends archives the same
//! lines as one import, and a fork of any prefix is stored as one pointer and rebuilt byte
//! for byte — with Claude Code 2.1's copy quirks (new `sessionId`, a new `promptId` on
//! user entries, `requestSessionId` appended to assistant entries).

use std::path::Path;

use cclog_engine::Log;
use cclog_ingest::import::Importer;
use cclog_projections::archive::Archive;
use cclog_projections::pricing::PriceTable;
use cclog_projections::usage::{self, Grouping, UsageQuery};
use cclog_projections::{events, messages, replay};
use proptest::prelude::*;

use crate::support::open_with;

const PARENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const FORK: &str = "bbbbbbbb-0000-4000-8000-000000000002";

/// One generated transcript entry.
#[derive(Debug, Clone)]
enum Spec {
    User(String),
    Assistant(String),
    Attachment,
    Meta,
    Malformed,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => "[a-z ]{0,40}".prop_map(Spec::User),
        4 => "[a-zé\"\\\\ ]{0,60}".prop_map(Spec::Assistant),
        2 => Just(Spec::Attachment),
        2 => Just(Spec::Meta),
        1 => Just(Spec::Malformed),
    ]
}

/// The transcript lines for `specs` in `session`, chained by `parentUuid` from `parent`.
fn lines(specs: &[Spec], session: &str, tag: &str, mut parent: Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let uuid = format!("{tag}-{index:04}-0000-0000-000000000000");
        let parent_json = parent.as_ref().map_or("null".to_string(), |parent| format!("\"{parent}\""));
        let line = match spec {
            Spec::User(text) => format!(
                r#"{{"parentUuid":{parent_json},"isSidechain":false,"promptId":"p-{session}","type":"user","message":{{"role":"user","content":{}}},"uuid":"{uuid}","timestamp":"2026-01-01T00:00:{:02}.000Z","sessionId":"{session}"}}"#,
                serde_json::to_string(text).unwrap(),
                index % 60
            ),
            Spec::Assistant(text) => format!(
                r#"{{"parentUuid":{parent_json},"isSidechain":false,"message":{{"id":"msg_{tag}{index}","model":"claude-sonnet-4-5","role":"assistant","content":[{{"type":"text","text":{}}}],"usage":{{"input_tokens":3,"output_tokens":{index}}}}},"type":"assistant","uuid":"{uuid}","timestamp":"2026-01-01T00:01:{:02}.000Z","sessionId":"{session}"}}"#,
                serde_json::to_string(text).unwrap(),
                index % 60
            ),
            Spec::Attachment => format!(
                r#"{{"parentUuid":{parent_json},"isSidechain":false,"attachment":{{"type":"x"}},"type":"attachment","uuid":"{uuid}","sessionId":"{session}"}}"#
            ),
            Spec::Meta => format!(r#"{{"type":"mode","mode":"normal","sessionId":"{session}"}}"#),
            Spec::Malformed => r#"{"type":"user","message":"#.to_string(),
        };
        if matches!(spec, Spec::User(_) | Spec::Assistant(_) | Spec::Attachment) {
            parent = Some(uuid);
        }
        out.push(line);
    }
    out
}

/// What Claude Code 2.1 writes for a copied entry in a fork.
fn fork_copy(line: &str) -> String {
    let copied = line.replace(PARENT, FORK);
    if copied.contains(r#""type":"assistant""#) {
        format!("{},\"requestSessionId\":\"{PARENT}\"}}", &copied[..copied.len() - 1])
    } else {
        copied
    }
}

fn import(log: &Log, root: &Path) -> cclog_ingest::import::ImportReport {
    Importer::new(log).import(&[root.to_path_buf()], &|_| {}).unwrap()
}

fn replayed(log: &Log, path: &Path) -> Vec<u8> {
    let path = std::fs::canonicalize(path).unwrap();
    let file = Archive::file(log, path.to_str().unwrap()).unwrap().expect("archived");
    let mut out = Vec::new();
    replay::write_file(log, &file, None, &mut out).unwrap();
    out
}

/// The content events of a file's stream: `(kind, payload)` of its lines and copies.
fn content(log: &Log, path: &Path) -> Vec<(String, Vec<u8>)> {
    let path = std::fs::canonicalize(path).unwrap();
    log.stream(&events::transcript_stream(path.to_str().unwrap()), 0)
        .map(Result::unwrap)
        .filter(|event| matches!(event.kind(), events::KIND_LINE | events::KIND_COPY))
        .map(|event| (event.kind().to_string(), event.payload))
        .collect()
}

fn project_file(root: &Path, session: &str) -> std::path::PathBuf {
    let dir = root.join("-tmp-prop");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{session}.jsonl"))
}

/// Whether every page of the session's transcript, read through the archive's segments,
/// is the slice of its lines a full replay gives: same positions, bytes and events.
fn pages_agree(log: &Log, session: &str) -> Result<(), TestCaseError> {
    let session = Archive::session(log, session).unwrap();
    let lines: Vec<(u64, Vec<u8>, u64)> = cclog_projections::lineage::session_entries(log, &session)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(index, entry)| (index as u64, entry.line.bytes, entry.line.seq))
        .collect();
    for first in 0..=lines.len() + 1 {
        for limit in [1, 3, lines.len().max(1)] {
            let page: Vec<(u64, Vec<u8>, u64)> = messages::session_messages(log, &session, first as u64, limit)
                .unwrap()
                .into_iter()
                .map(|message| (message.index, message.bytes().to_vec(), message.event.seq()))
                .collect();
            let expected: Vec<_> = lines.iter().skip(first).take(limit).cloned().collect();
            prop_assert_eq!(page, expected, "first {} limit {}", first, limit);
        }
    }
    Ok(())
}

/// Whether folding the whole log afresh gives every projection the state it has live.
fn rebuild_agrees(log: &Log) -> bool {
    log.rebuild_blocking().unwrap().iter().all(|report| report.equal_to_previous)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_split_into_appends_archives_what_one_import_does(
        specs in prop::collection::vec(spec(), 1..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        unterminated in any::<bool>(),
    ) {
        let mut text = lines(&specs, PARENT, "u", None).join("\n");
        if !unterminated {
            text.push('\n');
        }
        let bytes = text.into_bytes();
        let mut cut_points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        cut_points.push(bytes.len());
        cut_points.sort_unstable();

        let (whole_root, split_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (whole_data, split_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let whole_file = project_file(whole_root.path(), PARENT);
        std::fs::write(&whole_file, &bytes).unwrap();
        let whole = open_with(whole_data.path(), cclog_projections::standard());
        import(&whole, whole_root.path());

        let split_file = project_file(split_root.path(), PARENT);
        let split = open_with(split_data.path(), cclog_projections::standard());
        std::fs::write(&split_file, b"").unwrap();
        let mut written = 0;
        for cut in cut_points {
            let mut file = std::fs::OpenOptions::new().append(true).open(&split_file).unwrap();
            std::io::Write::write_all(&mut file, &bytes[written..cut]).unwrap();
            written = cut;
            let report = import(&split, split_root.path());
            prop_assert_eq!(report.revisions, 0);
        }
        prop_assert_eq!(replayed(&split, &split_file), bytes.clone());
        prop_assert_eq!(replayed(&whole, &whole_file), bytes);
        prop_assert_eq!(content(&split, &split_file), content(&whole, &whole_file));
        let folded = |log: &Log| {
            Archive::sessions(log)
                .unwrap()
                .into_iter()
                .map(|s| (s.id, s.entries, s.own_entries, s.malformed, s.usage_by_model, s.first_at, s.last_at))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(folded(&split), folded(&whole));
        // The day rows hold every API message once, however the file arrived.
        let daily = |log: &Log| {
            let query = UsageQuery::new(Grouping::Daily).in_time_zone("UTC").unwrap();
            usage::report(log, &query).unwrap().json(PriceTable::built_in())
        };
        prop_assert_eq!(daily(&split), daily(&whole));
        let in_sessions: u64 = Archive::sessions(&whole).unwrap().iter().map(|session| session.usage().total()).sum();
        prop_assert_eq!(daily(&whole)["totals"]["totalTokens"].as_u64(), Some(in_sessions));
        pages_agree(&split, PARENT)?;
        pages_agree(&whole, PARENT)?;
        // Live, the archive folded each appended chunk at once; a rebuild folds the log in
        // chunks cut elsewhere, and must agree.
        prop_assert!(rebuild_agrees(&split));
    }

    /// `together`: the parent and the fork are imported in one run, so the fork's copies
    /// find their originals among the parent's chunks still in flight; otherwise the parent
    /// is imported (and durable) first.
    #[test]
    fn a_fork_of_any_prefix_is_one_pointer_and_replays_exactly(
        parent_specs in prop::collection::vec(spec(), 1..40),
        fork_at in any::<prop::sample::Index>(),
        own_specs in prop::collection::vec(spec(), 0..8),
        together in any::<bool>(),
    ) {
        let root = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let parent_lines = lines(&parent_specs, PARENT, "u", None);
        let parent_file = project_file(root.path(), PARENT);
        std::fs::write(&parent_file, parent_lines.join("\n") + "\n").unwrap();
        let log = open_with(data.path(), cclog_projections::standard());
        if !together {
            import(&log, root.path());
        }

        // The fork copies the parent's chain up to a point, as Claude Code does: chain
        // entries only, in order, then goes on with its own entries.
        let chain: Vec<&String> = parent_lines
            .iter()
            .filter(|line| line.contains(r#""uuid":"#))
            .collect();
        let shared = fork_at.index(chain.len() + 1);
        let mut fork_lines = vec![format!(r#"{{"type":"mode","mode":"normal","sessionId":"{FORK}"}}"#)];
        fork_lines.extend(chain[..shared].iter().map(|line| fork_copy(line).replace("p-", "q-")));
        let last_shared = chain[..shared].last().map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["uuid"].as_str().unwrap().to_string()
        });
        fork_lines.extend(lines(&own_specs, FORK, "f", last_shared.clone()));
        let fork_file = project_file(root.path(), FORK);
        let fork_bytes = (fork_lines.join("\n") + "\n").into_bytes();
        std::fs::write(&fork_file, &fork_bytes).unwrap();
        let report = import(&log, root.path());

        prop_assert_eq!(report.copy_runs, u64::from(shared > 0));
        prop_assert_eq!(report.copied_entries, shared as u64);
        prop_assert_eq!(replayed(&log, &fork_file), fork_bytes);
        let fork = Archive::session(&log, FORK).unwrap();
        if shared > 0 {
            prop_assert_eq!(fork.parent.as_deref(), Some(PARENT));
            prop_assert_eq!(fork.fork_point, last_shared);
        } else {
            prop_assert_eq!(fork.parent, None);
        }
        pages_agree(&log, PARENT)?;
        pages_agree(&log, FORK)?;
        prop_assert!(rebuild_agrees(&log));
    }
}
