//! `cclog kv`: the session coordinator's key-values from the command line — list scopes and
//! keys, read a value now or as it was, set one (optionally compare-and-set), delete one,
//! and show a key's whole history. Writes made here are attributed to instance `cli` on
//! this machine.

use std::path::Path;

use cclog_ingest::coordinator::{AsOf, KvStore, Stored, Ttl, Version};
use cclog_projections::events::coordinator::Writer;
use serde_json::{json, Value};

use crate::args::KvCommand;
use crate::output::{self, Column, Table};
use crate::{Failure, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK};

/// Exit code when a compare-and-set finds another version.
pub const EXIT_CONFLICT: u8 = 4;

pub fn run(data: &Path, command: KvCommand) -> anyhow::Result<u8> {
    if let KvCommand::Watch { scope, key, from, zone, json } = command {
        return watch(data, &scope, key.as_deref(), from, &zone.zone()?, json);
    }
    super::require_store(data).or_else(|error| match &command {
        // The first write makes the log; reads of nothing need none.
        KvCommand::Set { .. } | KvCommand::ImportLegacy { .. } => Ok(()),
        _ => Err(error),
    })?;
    // Without a server, several `cclog kv` at once take turns rather than fail.
    let log = super::open_log_waiting(data)?;
    let store = KvStore::new(&log);
    match command {
        KvCommand::Scopes { pattern, json } => {
            let scopes = store.scopes(pattern.as_deref())?;
            print_names(&scopes, json, "no scopes hold keys");
        }
        KvCommand::Ls { scope, json } => {
            let keys = store.keys(&scope)?;
            print_names(&keys, json, &format!("scope {scope:?} holds no keys"));
        }
        KvCommand::Get { scope, key, as_of, json } => {
            let as_of = as_of.as_deref().map(AsOf::parse).transpose()?;
            let Some(version) = store.retrieve(&scope, &key, as_of)? else {
                return Err(
                    Failure { code: EXIT_FAILURE, message: format!("no key {key:?} in scope {scope:?}") }.into()
                );
            };
            if json {
                crate::outln!("{}", crate::json_style::line(&version)?);
            } else {
                crate::outln!("{}", version.value.unwrap_or(Value::Null));
            }
        }
        KvCommand::Set { scope, key, value, expect_version, ttl, json } => {
            let ttl = ttl.map(Ttl::new).transpose()?;
            let value: Value = serde_json::from_str(&value).map_err(|error| Failure {
                code: EXIT_BAD_INPUT,
                message: format!("the value is not JSON ({error}); quote text as JSON: '\"done\"'"),
            })?;
            match store.store(&scope, &key, &value, expect_version, ttl, &cli_writer())? {
                Stored::Written { version, seq, expires_at } => {
                    if json {
                        let mut written = json!({"version": version, "seq": seq});
                        if let Some(expires_at) = &expires_at {
                            written["expires_at"] = json!(expires_at);
                        }
                        crate::outln!("{written}");
                    } else {
                        let expires = expires_at
                            .map(|at| format!(", expires {}", output::local_time(&at, &output::time_zone(), true)))
                            .unwrap_or_default();
                        crate::outln!("{scope} {key}: version {version} (seq {seq}{expires})");
                    }
                }
                Stored::Conflict { current } => {
                    let at = current.as_ref().map_or(0, |current| current.version);
                    if json {
                        crate::outln!("{}", json!({"conflict": true, "current": current}));
                    }
                    crate::errln!(
                        "cclog: {key:?} is at version {at}, not {}; nothing was written{}",
                        expect_version.unwrap_or_default(),
                        current
                            .and_then(|current| current.value)
                            .map(|value| format!(" (value {value})"))
                            .unwrap_or_default()
                    );
                    return Ok(EXIT_CONFLICT);
                }
            }
        }
        KvCommand::Rm { scope, key, json } => match store.delete(&scope, &key, &cli_writer())? {
            Some(version) if json => crate::outln!("{}", json!({"deleted": true, "version": version})),
            Some(version) => crate::outln!("{scope} {key}: deleted (version {version})"),
            None => {
                return Err(Failure { code: EXIT_FAILURE, message: format!("no key {key:?} in scope {scope:?}") }.into())
            }
        },
        KvCommand::ImportLegacy { dir, json } => {
            let cwd = std::env::current_dir()?;
            let dir = dir.unwrap_or_else(|| super::coordinator_config::legacy_store_dir(&cwd));
            let report =
                cclog_ingest::legacy_store::import_legacy(&log, &dir, &cclog_ingest::coordinator::detect_machine())?;
            for malformed in &report.malformed {
                crate::errln!("cclog: skipped {}: {}", malformed.file, malformed.problem);
            }
            if json {
                crate::outln!("{}", crate::json_style::line(&report)?);
            } else {
                crate::outln!(
                    "{}: {} in {} ({} imported, {} already in the log){}",
                    report.dir,
                    output::count(report.imported as u64 + report.unchanged as u64, "key"),
                    output::count_of(report.scopes.len() as u64, "scope", "scopes"),
                    report.imported,
                    report.unchanged,
                    match report.malformed.len() {
                        0 => String::new(),
                        skipped => format!("; {} skipped", output::count(skipped as u64, "file")),
                    }
                );
            }
        }
        KvCommand::Watch { .. } => unreachable!("watched above, without opening the log"),
        KvCommand::History { scope, key, json, zone } => {
            let history = store.history(&scope, &key)?;
            if history.is_empty() {
                // As `kv get`: a key that was never written is a failure, for scripts too.
                return Err(Failure {
                    code: EXIT_FAILURE,
                    message: format!(
                        "{key:?} was never written in scope {scope:?} (`cclog kv ls {scope}` lists its keys)"
                    ),
                }
                .into());
            }
            if json {
                crate::outln!("{}", crate::json_style::line(&history)?);
            } else {
                print_history(&history, &zone.zone()?);
            }
        }
    }
    Ok(EXIT_OK)
}

fn print_names(names: &[String], json: bool, none: &str) {
    if json {
        crate::outln!("{}", Value::from(names.to_vec()));
    } else if names.is_empty() {
        crate::errln!("{none}");
    } else {
        for name in names {
            crate::outln!("{name}");
        }
    }
}

/// A row per version, and one for each expiry that happened before the next write.
fn print_history(history: &[Version], zone: &jiff::tz::TimeZone) {
    let mut rows = Vec::new();
    for version in history {
        let writer = &version.writer;
        let value = match &version.value {
            Some(value) => output::preview(value.to_string().as_bytes(), 200),
            None => "(deleted)".to_string(),
        };
        rows.push(vec![
            version.version.to_string(),
            output::local_time(&version.at, zone, true),
            cclog_projections::lineage::shorten(&writer_label(&writer.instance, &writer.machine, &writer.project), 24),
            version.seq.to_string(),
            value,
        ]);
        let lapse = match (&version.expires_at, version.expired) {
            (Some(at), true) => Some((at, format!("(expired: version {} lapsed)", version.version))),
            (Some(at), false) if Some(version) == history.last() => Some((at, "(expires)".to_string())),
            _ => None,
        };
        if let Some((at, what)) = lapse {
            rows.push(vec![String::new(), output::local_time(at, zone, true), "(ttl)".into(), String::new(), what]);
        }
    }
    let table = Table {
        columns: vec![
            Column::number("VERSION"),
            Column::text(&output::time_heading("AT", zone)),
            Column::text("WRITER").droppable(1),
            Column::number("SEQ"),
            Column::text("VALUE").flexible(16),
        ],
        rows,
        ..Table::default()
    };
    table.print(output::table_width(false));
}

/// `kv watch`: follows the server's `/api/kv/stream` and prints each change as it comes.
fn watch(
    data: &Path,
    scope: &str,
    key: Option<&str>,
    from: Option<u64>,
    zone: &jiff::tz::TimeZone,
    json: bool,
) -> anyhow::Result<u8> {
    cclog_ingest::coordinator::check_name("scope", scope)?;
    if let Some(key) = key {
        cclog_ingest::coordinator::check_name("key", key)?;
    }
    let config = super::coordinator_config::CoordinatorConfig::for_current_dir()?;
    let server = super::client::Server::find_or_start(data, config.server_idle_exit())?;
    let mut path = format!("/api/kv/stream?scope={}", super::client::query_value(scope));
    if let Some(key) = key {
        path.push_str(&format!("&key={}", super::client::query_value(key)));
    }
    if let Some(from) = from {
        path.push_str(&format!("&from={from}"));
    }
    if !json {
        crate::errln!("watching {scope}{} (Ctrl-C stops)", key.map(|key| format!(" {key}")).unwrap_or_default());
    }
    server.follow_events(&path, |event, data| {
        if event != "change" {
            return Ok(std::ops::ControlFlow::Continue(()));
        }
        let change: Value = serde_json::from_str(data)?;
        if json {
            crate::outln!("{change}");
        } else {
            crate::outln!("{}", change_line(&change, zone));
        }
        Ok(std::ops::ControlFlow::<()>::Continue(()))
    })?;
    Ok(EXIT_OK)
}

/// One change as `kv watch` prints it: time, what, key, version, value, writer, seq.
fn change_line(change: &Value, zone: &jiff::tz::TimeZone) -> String {
    let at = output::local_time(change["at"].as_str().unwrap_or_default(), zone, true);
    let writer = &change["writer"];
    let text = |field: &str| writer[field].as_str().unwrap_or_default().to_string();
    let by = writer_label(&text("instance"), &text("machine"), &text("project"));
    let seq = change["seq"].as_u64().unwrap_or_default();
    match change["change"].as_str() {
        Some("scope_delete") => format!("{at}  scope deleted  by {by} (seq {seq})"),
        kind => {
            let key = change["key"].as_str().unwrap_or_default();
            let version = change["version"].as_u64().unwrap_or_default();
            let what = match kind {
                Some("delete") => "deleted".to_string(),
                _ => output::preview(change["value"].to_string().as_bytes(), 200),
            };
            let expires = change["expires_at"]
                .as_str()
                .map(|at| format!(", expires {}", output::local_time(at, zone, true)))
                .unwrap_or_default();
            format!("{at}  {key} v{version}  {what}  by {by} (seq {seq}{expires})")
        }
    }
}

/// `instance@machine:project`, without the `:` when the write names no project.
fn writer_label(instance: &str, machine: &str, project: &str) -> String {
    match project {
        "" => format!("{instance}@{machine}"),
        project => format!("{instance}@{machine}:{project}"),
    }
}

/// Writes from the command line: instance `cli` on this machine.
fn cli_writer() -> Writer {
    Writer { instance: "cli".into(), machine: cclog_ingest::coordinator::detect_machine(), project: String::new() }
}
