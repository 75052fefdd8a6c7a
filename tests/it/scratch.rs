use serde_json::json;
use crate::fake_api::{FakeApi, Reply};
use crate::claude_cli::run_claude;

#[test]
#[ignore]
fn scratch_fork_layout() {
    let root = std::path::PathBuf::from("/tmp/scratch");
    let _ = std::fs::remove_dir_all(&root);
    let home = root.join("home");
    let project = root.join("proj");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    let api = FakeApi::by_prompt(vec![
        ("alpha", vec![
            Reply::ToolUse { name: "Write".into(), input: json!({"file_path": project.join("a.txt"), "content": "A\n"}) },
            Reply::ToolUse { name: "Bash".into(), input: json!({"command": "ls", "description": "list"}) },
            Reply::Text("alpha done".into())]),
        ("beta", vec![Reply::ToolUse { name: "Read".into(), input: json!({"file_path": project.join("a.txt")}) }, Reply::Text("beta done".into())]),
        ("left", vec![Reply::ToolUse { name: "Write".into(), input: json!({"file_path": project.join("l.txt"), "content": "L\n"}) }, Reply::Text("left done".into())]),
        ("right", vec![Reply::Text("right done".into())]),
    ]);
    let tools = ["--allowedTools", "Write,Bash,Read"];
    let a = run_claude(&api, &home, &project, "alpha: write a file", &tools);
    let sid = serde_json::from_str::<serde_json::Value>(&a[0]).unwrap()["session_id"].as_str().unwrap().to_string();
    let mut e = vec!["--resume", &sid]; e.extend(tools);
    let b = run_claude(&api, &home, &project, "beta: read it", &e);
    let mut f = vec!["--resume", &sid, "--fork-session"]; f.extend(tools);
    let l = run_claude(&api, &home, &project, "left branch", &f);
    let r = run_claude(&api, &home, &project, "right branch", &f);
    for (n, lines) in [("a", a), ("b", b), ("l", l), ("r", r)] {
        std::fs::write(root.join(format!("{n}.stream.jsonl")), lines.join("\n") + "\n").unwrap();
    }
}

#[test]
#[ignore]
fn scratch_subagent_layout() {
    let root = std::path::PathBuf::from("/tmp/scratch2");
    let _ = std::fs::remove_dir_all(&root);
    let home = root.join("home");
    let project = root.join("proj");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    let api = FakeApi::by_prompt(vec![
        ("gamma", vec![
            Reply::ToolUse { name: "Agent".into(), input: json!({"description": "sub task", "prompt": "delta: do the sub task", "subagent_type": "general-purpose"}) },
            Reply::Text("gamma done".into())]),
        ("delta", vec![Reply::Text("sub done".into())]),
    ]);
    let a = run_claude(&api, &home, &project, "gamma: use an agent", &["--allowedTools", "Agent,Task"]);
    std::fs::write(root.join("a.stream.jsonl"), a.join("\n") + "\n").unwrap();
    let reqs = api.requests();
    let names: Vec<_> = reqs[0]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    eprintln!("TOOLS {names:?} requests {}", reqs.len());
}
