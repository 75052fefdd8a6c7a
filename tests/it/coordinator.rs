//! The session coordinator's key-values: any sequence of sets, deletes and scope deletions
//! reads back as a plain model says (current values, versions, histories, keys, scopes, and
//! values as of every log position), and a rebuild folds the same state; compare-and-set is
//! exact under concurrency, in one process and through `cclog serve` from many `cclog kv`
//! processes at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use cclog_ingest::coordinator::{AsOf, KvStore, Stored};
use cclog_projections::events::coordinator::Writer;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::serve::Server;
use crate::support::{cclog_bin, dump, open};

fn writer(instance: &str) -> Writer {
    Writer { instance: instance.into(), machine: "test-machine".into(), project: "owner/repo".into() }
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8, i64),
    Delete(u8, u8),
    DeleteScope(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3u8, 0..4u8, any::<i64>()).prop_map(|(scope, key, value)| Op::Set(scope, key, value)),
        2 => (0..3u8, 0..4u8).prop_map(|(scope, key)| Op::Delete(scope, key)),
        1 => (0..3u8).prop_map(Op::DeleteScope),
    ]
}

/// One key's model: every version (`None`: deleted) with the log position it was written at.
type Model = BTreeMap<(String, String), Vec<(Option<Value>, u64)>>;

fn names(scope: u8, key: u8) -> (String, String) {
    (format!("machine:project:scope-{scope}"), format!("key-{key}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn key_values_read_back_as_the_model_says(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let store = KvStore::new(&log);
        let mut model = Model::new();
        for op in &ops {
            match *op {
                Op::Set(scope, key, value) => {
                    let (scope, key) = names(scope, key);
                    let Stored::Written { version, seq, .. } = store.store(&scope, &key, &json!(value), None, None, &writer("a")).unwrap() else {
                        panic!("an unconditional store conflicted");
                    };
                    let versions = model.entry((scope, key)).or_default();
                    versions.push((Some(json!(value)), seq));
                    prop_assert_eq!(version, versions.len() as u64);
                }
                Op::Delete(scope, key) => {
                    let (scope, key) = names(scope, key);
                    let deleted = store.delete(&scope, &key, &writer("b")).unwrap();
                    let versions = model.entry((scope, key)).or_default();
                    if versions.last().is_some_and(|(value, _)| value.is_some()) {
                        versions.push((None, log.len() - 1));
                        prop_assert_eq!(deleted, Some(versions.len() as u64));
                    } else {
                        prop_assert_eq!(deleted, None);
                    }
                }
                Op::DeleteScope(scope) => {
                    let (scope, _) = names(scope, 0);
                    let live: Vec<_> = model
                        .iter()
                        .filter(|((s, _), versions)| *s == scope && versions.last().is_some_and(|(value, _)| value.is_some()))
                        .map(|(name, _)| name.clone())
                        .collect();
                    prop_assert_eq!(store.delete_scope(&scope, &writer("c")).unwrap(), live.len());
                    for name in live {
                        model.get_mut(&name).unwrap().push((None, log.len() - 1));
                    }
                }
            }
        }
        for ((scope, key), versions) in &model {
            let current = store.retrieve(scope, key, None).unwrap();
            prop_assert_eq!(current.and_then(|version| version.value), versions.last().and_then(|(value, _)| value.clone()));
            let history = store.history(scope, key).unwrap();
            prop_assert_eq!(history.len(), versions.len());
            for (index, ((value, seq), recorded)) in versions.iter().zip(&history).enumerate() {
                prop_assert_eq!(recorded.version, index as u64 + 1);
                prop_assert_eq!(&recorded.value, value);
                prop_assert_eq!(recorded.seq, *seq);
                // As of this version's position, this is the value.
                let then = store.retrieve(scope, key, Some(AsOf::Seq(*seq))).unwrap();
                prop_assert_eq!(then.and_then(|version| version.value), value.clone());
            }
        }
        for scope in 0..3u8 {
            let (scope, _) = names(scope, 0);
            let live: Vec<String> = model
                .iter()
                .filter(|((s, _), versions)| *s == scope && versions.last().is_some_and(|(value, _)| value.is_some()))
                .map(|((_, key), _)| key.clone())
                .collect();
            prop_assert_eq!(store.keys(&scope).unwrap(), live);
        }
        let incremental = dump(&log, "coordinator");
        let reports = log.rebuild_blocking().unwrap();
        prop_assert!(reports.iter().all(|report| report.equal_to_previous), "{:?}", reports);
        prop_assert_eq!(incremental, dump(&log, "coordinator"));
    }
}

/// Adds one to the counter with compare-and-set, retrying on conflict.
fn increment(store: &KvStore<'_>, who: &Writer) {
    loop {
        let current = store.retrieve("team", "counter", None).unwrap();
        let (version, value) =
            current.map_or((0, 0), |current| (current.version, current.value.unwrap().as_i64().unwrap()));
        match store.store("team", "counter", &json!(value + 1), Some(version), None, who).unwrap() {
            Stored::Written { .. } => return,
            Stored::Conflict { .. } => continue,
        }
    }
}

#[test]
fn compare_and_set_is_exact_with_8_writers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    std::thread::scope(|scope| {
        for client in 0..8 {
            let log = Arc::clone(&log);
            scope.spawn(move || {
                let store = KvStore::new(&log);
                let who = writer(&format!("claude_{}", client + 1));
                for _ in 0..200 {
                    increment(&store, &who);
                }
            });
        }
    });
    let store = KvStore::new(&log);
    let now = store.retrieve("team", "counter", None).unwrap().unwrap();
    assert_eq!(now.value, Some(json!(1_600)));
    let history = store.history("team", "counter").unwrap();
    assert_eq!(history.len(), 1_600, "every write is a version");
    for (index, version) in history.iter().enumerate() {
        assert_eq!(version.value, Some(json!(index as i64 + 1)), "no increment was lost or repeated");
    }
    // A value over 1 MiB is refused, and nothing is written.
    let before = log.len();
    let huge = json!("x".repeat(1 << 20));
    let refused = store.store("team", "big", &huge, None, None, &writer("claude_1")).unwrap_err();
    assert!(refused.to_string().contains("the most is 1048576"), "{refused}");
    assert_eq!(log.len(), before);
    for client in 1..=8 {
        let by_client = history.iter().filter(|version| version.writer.instance == format!("claude_{client}")).count();
        assert_eq!(by_client, 200, "claude_{client}'s writes are attributed to it");
    }
}

#[test]
fn cclog_kv_processes_through_the_server_compare_and_set_exactly() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &["--no-archive"]);
    let kv = |args: &[&str]| {
        std::process::Command::new(cclog_bin()).arg("--data").arg(data.path()).arg("kv").args(args).output().unwrap()
    };
    // Four processes, 15 compare-and-set increments each, all through the server.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..15 {
                    loop {
                        let read = kv(&["get", "team", "counter", "--json"]);
                        let (version, value) = if read.status.success() {
                            let current: Value = serde_json::from_slice(&read.stdout).unwrap();
                            (current["version"].as_u64().unwrap(), current["value"].as_i64().unwrap())
                        } else {
                            (0, 0)
                        };
                        let written = kv(&[
                            "set",
                            "team",
                            "counter",
                            &(value + 1).to_string(),
                            "--expect-version",
                            &version.to_string(),
                        ]);
                        match written.status.code() {
                            Some(0) => break,
                            Some(4) => continue,
                            other => panic!("kv set: {other:?}: {}", String::from_utf8_lossy(&written.stderr)),
                        }
                    }
                }
            });
        }
    });
    let now: Value = serde_json::from_slice(&kv(&["get", "team", "counter", "--json"]).stdout).unwrap();
    assert_eq!(now["value"], 60);
    assert_eq!(now["writer"]["instance"], "cli");
    let history: Value = serde_json::from_slice(&kv(&["history", "team", "counter", "--json"]).stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 60);
    let scopes: Value = serde_json::from_slice(&kv(&["scopes", "te*", "--json"]).stdout).unwrap();
    assert_eq!(scopes, json!(["team"]));
    // Bad input is refused with what to do, and nothing is written.
    let bad = kv(&["set", "team", "bad\u{7}key", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("control character"));
    let keys: Value = serde_json::from_slice(&kv(&["ls", "team", "--json"]).stdout).unwrap();
    assert_eq!(keys, json!(["counter"]));
    server.stop();
    crate::support::verify_intact(data.path());
}

#[test]
fn instances_are_claimed_once_and_reclaimable_after_the_lease() {
    use cclog_ingest::coordinator::Instances;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    let long_lease = std::time::Duration::from_secs(600);
    // Sixteen sign-ons at once: sixteen different instances.
    let mut claimed: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|holder| {
                let log = Arc::clone(&log);
                scope.spawn(move || {
                    Instances::new(&log, "box", "acme/widgets", long_lease)
                        .sign_on(None, &format!("holder-{holder}"))
                        .unwrap()
                        .instance
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 16);
    // With a short lease: a held instance is refused to someone else while its holder is active…
    let lease = std::time::Duration::from_millis(300);
    let instances = Instances::new(&log, "box", "acme/widgets", lease);
    instances.touch("claude_3");
    let refused = instances.sign_on(Some("claude_3"), "intruder").unwrap_err();
    assert!(refused.to_string().contains("held by holder-"), "{refused}");
    // …and can be reclaimed once the holder has been silent for the lease.
    std::thread::sleep(lease + std::time::Duration::from_millis(100));
    let reclaimed = instances.sign_on(Some("claude_3"), "successor").unwrap();
    assert_eq!(reclaimed.instance, "claude_3");
    assert!(instances.held().unwrap().iter().any(|(name, claim)| name == "claude_3" && claim.holder == "successor"));
    // The holder's own lease decides, not the claimant's: claude_4 was claimed on a long
    // lease, so a claimant on a short one is refused although the holder has been silent
    // longer than that.
    let refused = instances.sign_on(Some("claude_4"), "hurried").unwrap_err();
    assert!(refused.to_string().contains("held by holder-"), "{refused}");
    // Released instances are free for the next sign-on.
    assert!(instances.sign_off("claude_1").unwrap());
    assert!(!instances.sign_off("claude_1").unwrap(), "releasing twice is not an error");
    assert_eq!(instances.sign_on(None, "newcomer").unwrap().instance, "claude_1");
    // Another project's instances are its own.
    assert_eq!(Instances::new(&log, "box", "other/repo", lease).sign_on(None, "x").unwrap().instance, "claude_1");
}

#[test]
fn cclog_kv_processes_without_a_server_take_turns_and_lose_no_write() {
    let data = tempfile::tempdir().unwrap();
    let kv = |args: &[&str]| {
        std::process::Command::new(cclog_bin()).arg("--data").arg(data.path()).arg("kv").args(args).output().unwrap()
    };
    // Eight processes at once on a directory no server owns: each waits its turn.
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..8)
            .map(|index| scope.spawn(move || kv(&["set", "team", &format!("key-{index}"), &index.to_string()])))
            .collect();
        writers.into_iter().map(|writer| writer.join().unwrap()).collect()
    });
    for output in &outputs {
        assert!(output.status.success(), "{:?}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let keys: Value = serde_json::from_slice(&kv(&["ls", "team", "--json"]).stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 8, "{keys}");
    crate::support::verify_intact(data.path());
}

#[test]
fn a_value_with_a_ttl_lapses_on_its_own_and_its_history_keeps_the_write_and_the_expiry() {
    let data = tempfile::tempdir().unwrap();
    let log = open(data.path());
    let store = KvStore::new(&log);
    let ttl = cclog_ingest::coordinator::Ttl::seconds(1.0).unwrap();
    store.store("team", "claim", &json!("a"), Some(0), Some(ttl), &writer("claude_1")).unwrap();
    let written_at = store.retrieve("team", "claim", None).unwrap().expect("live before its TTL");
    assert!(written_at.expires_at.is_some());
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(store.retrieve("team", "claim", None).unwrap(), None, "expired reads as absent");
    assert!(store.keys("team").unwrap().is_empty() && store.scopes(None).unwrap().is_empty());
    let as_of = store.retrieve("team", "claim", Some(AsOf::Seq(written_at.seq))).unwrap();
    assert!(as_of.is_some(), "as of its own write it was live");
    let history = store.history("team", "claim").unwrap();
    assert!(history[0].expired, "the history shows the expiry");
    let Stored::Written { version, .. } =
        store.store("team", "claim", &json!("b"), Some(0), None, &writer("claude_2")).unwrap()
    else {
        panic!("compare-and-set with 0 claims an expired key")
    };
    assert_eq!(version, 2);
    assert!(cclog_ingest::coordinator::Ttl::seconds(-1.0).unwrap_err().to_string().contains("365 days"));
    log.rebuild_blocking().unwrap();
    assert_eq!(store.retrieve("team", "claim", None).unwrap().and_then(|v| v.value), Some(json!("b")));
    assert!(store.history("team", "claim").unwrap()[0].expired, "the same after a rebuild");
}

#[test]
fn kv_watch_prints_each_write_as_it_is_recorded_and_the_sse_stream_starts_anywhere() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &["--no-archive"]);
    let set = |key: &str, value: &str| {
        let output = crate::support::cclog(data.path(), &["kv", "set", "team:handoff", key, value]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    set("before", "0");
    // One watcher of the key, one of the whole scope, both from the start of the log (so
    // neither can miss a write made before it connected).
    let spawn = |args: &[&str]| {
        crate::support::cclog_command(data.path(), args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut of_key = spawn(&["kv", "watch", "team:handoff", "result", "--from", "0", "--json"]);
    let mut of_scope = spawn(&["kv", "watch", "team:handoff", "--from", "0", "--json"]);
    let mut key_lines = std::io::BufReader::new(of_key.stdout.take().unwrap()).lines();
    let mut scope_lines = std::io::BufReader::new(of_scope.stdout.take().unwrap()).lines();
    // The scope watcher's first line is the write from before it started.
    let first: Value = serde_json::from_str(&scope_lines.next().unwrap().unwrap()).unwrap();
    assert_eq!((first["key"].as_str(), first["change"].as_str()), (Some("before"), Some("set")), "{first}");
    set("other", "1");
    set("result", r#"{"answer": 42}"#);
    let output = crate::support::cclog(data.path(), &["kv", "rm", "team:handoff", "result"]);
    assert!(output.status.success());
    let next =
        |lines: &mut std::io::Lines<_>| -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let written = next(&mut key_lines);
    assert_eq!(written["value"], json!({"answer": 42}), "only the key's writes: {written}");
    assert_eq!((written["version"].as_u64(), written["change"].as_str()), (Some(1), Some("set")), "{written}");
    assert_eq!(written["writer"]["instance"], "cli", "{written}");
    let deleted = next(&mut key_lines);
    assert_eq!((deleted["change"].as_str(), deleted["version"].as_u64()), (Some("delete"), Some(2)), "{deleted}");
    let keys: Vec<String> =
        (0..3).map(|_| next(&mut scope_lines)["key"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(keys, ["other", "result", "result"]);
    for mut watcher in [of_key, of_scope] {
        watcher.kill().unwrap();
        watcher.wait().unwrap();
    }
    // A scope or key that cannot exist is a 400 naming it.
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut refused = agent.get(&format!("{}/api/kv/stream?scope=bad%0Ascope", server.url)).call().unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.body_mut().read_to_string().unwrap().contains("scope"));
    server.stop();
}
