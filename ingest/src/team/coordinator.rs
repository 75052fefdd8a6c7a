//! cclog's session coordinator in each agent's Claude Code: the running `cclog serve`'s MCP
//! endpoint registered as the user-scope MCP server `cclog` in the agent's `~/.claude.json`
//! (over HTTP, with the server's token), its tools allowed in `~/.claude/settings.json`,
//! and a `~/.claude/CLAUDE.md` telling the agent who it is: to sign on as its agent name and
//! to share the team's state in scope `team:<name>`. Files the agent or its user changed
//! are merged into, not replaced; a user's own CLAUDE.md is left alone.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::{Error, Result};

/// The MCP server's name in the agents' Claude Code (its tools are `mcp__cclog__*`).
pub const SERVER_NAME: &str = "cclog";

fn read_object(path: &Path) -> Result<Map<String, Value>> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(object)) => Ok(object),
            _ => Err(Error::InvalidTeam(format!(
                "{} is not a JSON object; fix or remove it so cclog can register its coordinator",
                path.display()
            ))),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

/// Writes `value` to `path` through a staging file and a rename, so Claude Code never reads
/// half a file.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let staging = path.with_extension("cclog-staging");
    let text = serde_json::to_vec_pretty(value).map_err(|error| Error::InvalidTeam(error.to_string()))?;
    std::fs::write(&staging, text).map_err(io)?;
    std::fs::rename(&staging, path).map_err(io)
}

/// Registers the coordinator at `url` (the server's `/mcp`) for `agent` of `team`, whose
/// home is `home`.
pub fn register(home: &Path, team: &str, agent: &str, url: &str, token: Option<&str>) -> Result<()> {
    let state_path = home.join(".claude.json");
    let mut state = read_object(&state_path)?;
    let mut server = json!({ "type": "http", "url": url });
    if let Some(token) = token {
        server["headers"] = json!({ "Authorization": format!("Bearer {token}") });
    }
    let servers = state.entry("mcpServers").or_insert_with(|| Value::Object(Map::new()));
    if !servers.is_object() {
        *servers = Value::Object(Map::new());
    }
    if let Value::Object(servers) = servers {
        servers.insert(SERVER_NAME.to_string(), server);
    }
    write_json(&state_path, &Value::Object(state))?;

    let settings_path = home.join(".claude").join("settings.json");
    let mut settings = read_object(&settings_path)?;
    let permissions = settings.entry("permissions").or_insert_with(|| json!({}));
    if !permissions.is_object() {
        *permissions = json!({});
    }
    let allow = &mut permissions["allow"];
    if !allow.is_array() {
        *allow = json!([]);
    }
    let rule = Value::from(format!("mcp__{SERVER_NAME}"));
    if let Value::Array(rules) = allow {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    write_json(&settings_path, &Value::Object(settings))?;

    let memory = home.join(".claude").join("CLAUDE.md");
    if !memory.exists() {
        let text = format!(
            "# You are `{agent}` of team `{team}`\n\n\
             You work alongside the team's other agents, each a Claude Code instance of its own. You share \
             state with them through the `{SERVER_NAME}` MCP server (cclog's session coordinator), whose every \
             write is kept:\n\n\
             - Sign on first with `sign_on` and `session_id` = `{agent}`; pass that session_id to every other call.\n\
             - Keep what the team shares in scope `team:{team}` (`store_data`, `retrieve_data`, `list_keys`); \
             update a shared key with `expected_version` so no one's write is lost.\n"
        );
        std::fs::write(&memory, text).map_err(|source| Error::Io { path: memory.clone(), source })?;
    }
    Ok(())
}
