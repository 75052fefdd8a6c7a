//! Queries over session lineage: a session's conversation (the chain from its last entry
//! back to the root), the fork tree, and the diff of two branches — their lowest common
//! ancestor in the fork tree, the fork point (the last entry their conversations share),
//! and what each did after it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cclog_engine::Log;
use serde::Serialize;
use serde_json::Value;

use crate::archive::{Archive, SessionRecord};
use crate::entry::{ReportedUsage, Usage};
use crate::pricing::{self, PriceTable};
use crate::replay::{self, Line};
use crate::Result;

/// One entry of a conversation, parsed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uuid: Option<String>,
    pub kind: String,
    pub line: Line,
    /// The parsed line; `Value::Null` for a malformed one.
    pub value: Value,
}

impl Entry {
    pub fn from_line(line: Line) -> Entry {
        let value: Value = serde_json::from_slice(&line.bytes).unwrap_or(Value::Null);
        let uuid = value["uuid"].as_str().map(str::to_string);
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        Entry { uuid, kind, line, value }
    }

    pub fn is_sidechain(&self) -> bool {
        self.value["isSidechain"].as_bool().unwrap_or(false)
    }

    fn parent(&self) -> Option<&str> {
        self.value["parentUuid"].as_str().or_else(|| self.value["logicalParentUuid"].as_str())
    }
}

/// Every line of a session's main transcript (current revision), parsed.
pub fn session_entries(log: &Log, session: &SessionRecord) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let Some(path) = session.main_file() else { return Ok(entries) };
    let Some(file) = Archive::file(log, path)? else { return Ok(entries) };
    replay::for_each_line(log, &file, None, |line| {
        entries.push(Entry::from_line(line));
        Ok(())
    })?;
    Ok(entries)
}

/// The session's conversation: from its last main-chain message back to the root, oldest
/// first. Abandoned branches (after `/rewind`) and sidechains are not on it.
pub fn conversation(entries: &[Entry]) -> Vec<&Entry> {
    let by_uuid: HashMap<&str, &Entry> =
        entries.iter().filter_map(|entry| entry.uuid.as_deref().map(|uuid| (uuid, entry))).collect();
    let leaf = entries.iter().rev().find(|entry| {
        entry.uuid.is_some() && !entry.is_sidechain() && matches!(entry.kind.as_str(), "user" | "assistant")
    });
    let mut path = Vec::new();
    let mut next = leaf;
    while let Some(entry) = next {
        if path.len() > entries.len() {
            break;
        }
        path.push(entry);
        next = entry.parent().and_then(|parent| by_uuid.get(parent).copied());
    }
    path.reverse();
    path
}

/// A node of the fork tree.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    pub id: String,
    pub title: Option<String>,
    pub project: String,
    pub fork_point: Option<String>,
    pub entries: u64,
    /// What ran the session, when cclog did: `team NAME/AGENT` or `plan ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// Names each node's owner from `owners` (session id → owner, as
    /// [`session_owners`] gives them).
    pub fn name_owners(&mut self, owners: &BTreeMap<String, String>) {
        self.owner = owners.get(&self.id).cloned();
        for child in &mut self.children {
            child.name_owners(owners);
        }
    }
}

/// What ran each session cclog ran as part of something: a team's agent (`team NAME/AGENT`)
/// or a plan (`plan ID`), by session id.
pub fn session_owners(log: &Log) -> crate::Result<BTreeMap<String, String>> {
    use crate::plans::PlanRegistry;
    use crate::teams::TeamRegistry;
    let mut owners = BTreeMap::new();
    for team in TeamRegistry::all(log)? {
        for (session, agent) in TeamRegistry::agent_sessions(log, &team)? {
            owners.insert(session, format!("team {}/{agent}", team.name));
        }
    }
    for plan in PlanRegistry::all(log)? {
        for session in &plan.sessions {
            owners.insert(session.clone(), format!("plan {}", plan.id));
        }
    }
    Ok(owners)
}

/// The fork trees of all sessions, or only the one containing `within`.
pub fn fork_tree(sessions: &[SessionRecord], within: Option<&str>) -> Vec<TreeNode> {
    let known: BTreeSet<&str> = sessions.iter().map(|session| session.id.as_str()).collect();
    let by_id: BTreeMap<&str, &SessionRecord> = sessions.iter().map(|session| (session.id.as_str(), session)).collect();
    let mut children: BTreeMap<&str, Vec<&SessionRecord>> = BTreeMap::new();
    let mut roots = Vec::new();
    for session in sessions {
        match session.parent.as_deref().filter(|parent| known.contains(parent)) {
            Some(parent) => children.entry(parent).or_default().push(session),
            None => roots.push(session),
        }
    }
    if let Some(id) = within {
        let mut top = id;
        let mut steps = 0;
        while let Some(parent) = by_id.get(top).and_then(|session| session.parent.as_deref()) {
            if !known.contains(parent) || steps > sessions.len() {
                break;
            }
            top = parent;
            steps += 1;
        }
        roots.retain(|session| session.id == top);
    }
    fn build(session: &SessionRecord, children: &BTreeMap<&str, Vec<&SessionRecord>>, depth: usize) -> TreeNode {
        let mut kids: Vec<&SessionRecord> = children.get(session.id.as_str()).cloned().unwrap_or_default();
        kids.sort_by(|a, b| a.first_at.cmp(&b.first_at).then(a.id.cmp(&b.id)));
        TreeNode {
            id: session.id.clone(),
            title: session.title.clone(),
            project: session.project.clone(),
            fork_point: session.fork_point.clone(),
            entries: session.entry_counts().entries,
            owner: None,
            children: if depth > 10_000 {
                Vec::new()
            } else {
                kids.into_iter().map(|kid| build(kid, children, depth + 1)).collect()
            },
        }
    }
    roots.into_iter().map(|root| build(root, &children, 0)).collect()
}

/// Where two branches part.
#[derive(Debug, Clone, Serialize)]
pub struct ForkPoint {
    pub uuid: String,
    /// How many conversation entries the branches share; the fork point is the last.
    pub position: usize,
    /// Seq of the fork point's stored line.
    pub seq: Option<u64>,
}

/// A tool call on a branch.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCall {
    pub id: Option<String>,
    pub name: String,
    pub input: Value,
}

/// One divergent entry.
#[derive(Debug, Clone, Serialize)]
pub struct BranchEntry {
    pub uuid: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    /// The first text of the entry, shortened.
    pub text: Option<String>,
}

/// What one side did after the fork point.
#[derive(Debug, Clone, Serialize)]
pub struct Branch {
    pub session: String,
    pub entries: Vec<BranchEntry>,
    pub user_messages: usize,
    pub assistant_messages: usize,
    pub tool_calls: Vec<ToolCall>,
    pub files_touched: Vec<String>,
    pub usage: Usage,
    /// `None` when none of its tokens is priced.
    pub cost_usd: Option<f64>,
    /// Models of its requests the price table has no price for.
    pub unpriced_models: std::collections::BTreeSet<String>,
}

/// The diff of two sessions.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The lowest common ancestor in the fork tree.
    pub ancestor: Option<String>,
    pub fork_point: Option<ForkPoint>,
    pub left: Branch,
    pub right: Branch,
    /// `right` minus `left`.
    pub tokens_difference: i128,
    pub cost_difference_usd: Option<f64>,
}

fn ancestors<'a>(id: &'a str, by_id: &BTreeMap<&'a str, &'a SessionRecord>) -> Vec<&'a str> {
    let mut chain = vec![id];
    let mut current = id;
    while let Some(parent) = by_id.get(current).and_then(|session| session.parent.as_deref()) {
        if chain.contains(&parent) {
            break;
        }
        chain.push(parent);
        current = parent;
    }
    chain
}

/// Diffs two sessions.
pub fn diff(log: &Log, left: &SessionRecord, right: &SessionRecord, prices: &PriceTable) -> Result<Diff> {
    let sessions = Archive::sessions(log)?;
    let by_id: BTreeMap<&str, &SessionRecord> = sessions.iter().map(|session| (session.id.as_str(), session)).collect();
    let right_line = ancestors(&right.id, &by_id);
    let ancestor = ancestors(&left.id, &by_id).into_iter().find(|id| right_line.contains(id)).map(str::to_string);

    let (left_entries, right_entries) = (session_entries(log, left)?, session_entries(log, right)?);
    let (left_path, right_path) = (conversation(&left_entries), conversation(&right_entries));
    let shared = left_path.iter().zip(&right_path).take_while(|(a, b)| a.uuid.is_some() && a.uuid == b.uuid).count();
    let fork_point = match shared.checked_sub(1).and_then(|last| left_path[last].uuid.clone()) {
        Some(uuid) => {
            let seq = Archive::entry(log, &uuid)?.and_then(|record| record.seq);
            Some(ForkPoint { uuid, position: shared, seq })
        }
        None => None,
    };
    let left = branch(&left.id, &left_path[shared..], prices);
    let right = branch(&right.id, &right_path[shared..], prices);
    let tokens_difference = i128::from(right.usage.total()) - i128::from(left.usage.total());
    let cost_difference_usd = right.cost_usd.zip(left.cost_usd).map(|(right, left)| right - left);
    Ok(Diff { ancestor, fork_point, left, right, tokens_difference, cost_difference_usd })
}

fn branch(session: &str, entries: &[&Entry], prices: &PriceTable) -> Branch {
    let mut out = Branch {
        session: session.to_string(),
        entries: Vec::new(),
        user_messages: 0,
        assistant_messages: 0,
        tool_calls: Vec::new(),
        files_touched: Vec::new(),
        usage: Usage::default(),
        cost_usd: None,
        unpriced_models: Default::default(),
    };
    let mut messages: BTreeMap<String, (String, Usage)> = BTreeMap::new();
    for entry in entries {
        let content = &entry.value["message"]["content"];
        let mut text = content.as_str().map(str::to_string);
        for block in content.as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") if text.is_none() => text = block["text"].as_str().map(str::to_string),
                Some("tool_use") => {
                    let name = block["name"].as_str().unwrap_or_default().to_string();
                    let input = block["input"].clone();
                    if matches!(name.as_str(), "Write" | "Edit" | "MultiEdit" | "NotebookEdit") {
                        let path = input["file_path"].as_str().or_else(|| input["notebook_path"].as_str());
                        if let Some(path) = path.filter(|path| !out.files_touched.iter().any(|seen| seen == path)) {
                            out.files_touched.push(path.to_string());
                        }
                    }
                    out.tool_calls.push(ToolCall { id: block["id"].as_str().map(str::to_string), name, input });
                }
                _ => {}
            }
        }
        match entry.kind.as_str() {
            "user" if text.is_some() => out.user_messages += 1,
            "assistant" => out.assistant_messages += 1,
            _ => {}
        }
        let message = &entry.value["message"];
        if let (Some(id), Some(model), Some(usage)) =
            (message["id"].as_str(), message["model"].as_str(), ReportedUsage::from_json(&message["usage"]))
        {
            if !model.starts_with('<') {
                messages.insert(id.to_string(), (pricing::billed_model(model, usage.fast), Usage::of_request(&usage)));
            }
        }
        out.entries.push(BranchEntry {
            uuid: entry.uuid.clone(),
            kind: entry.kind.clone(),
            seq: entry.line.seq,
            text: text.map(|text| shorten(&text, 120)),
        });
    }
    let mut by_model: BTreeMap<String, Usage> = BTreeMap::new();
    for (model, usage) in messages.values() {
        out.usage.add(usage);
        by_model.entry(model.clone()).or_default().add(usage);
    }
    let cost = prices.cost(&by_model);
    (out.cost_usd, out.unpriced_models) = (cost.usd, cost.unpriced);
    out
}

/// `text` on one line, cut to `max` characters with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// The fork tree the session named by `id` (or a unique prefix of it) belongs to.
pub fn tree_of(log: &Log, id: &str) -> Result<Vec<TreeNode>> {
    let session = Archive::session(log, id)?;
    Ok(fork_tree(&Archive::sessions(log)?, Some(&session.id)))
}

/// The diff of the sessions named by `left` and `right` (ids or unique prefixes).
pub fn diff_of(log: &Log, left: &str, right: &str, prices: &PriceTable) -> Result<Diff> {
    diff(log, &Archive::session(log, left)?, &Archive::session(log, right)?, prices)
}
