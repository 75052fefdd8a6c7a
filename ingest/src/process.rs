//! The processes of a run: the Claude Code CLI and everything it starts carry the run's id
//! in their environment ([`RUN_ENV`]), which children inherit — Claude Code starts its tools
//! in process groups of their own, so the run's process group does not reach them. That is
//! how a later cclog finds, and kills, what a run left running after the cclog that started
//! it died; a run id is random, so no other program can carry the same one.

/// The environment variable that names the run a process belongs to.
pub const RUN_ENV: &str = "CCLOG_RUN_ID";

/// Kills (SIGKILL) every process of this user whose environment names `run`; returns how
/// many were signalled. Where there is no `/proc`, nothing.
pub fn kill_run_processes(run: &str) -> usize {
    // A process the run's tools start while /proc is being read is missed by that pass; the
    // passes go on until one finds nothing (a handful at most).
    let mut killed = std::collections::HashSet::new();
    for _ in 0..5 {
        let before = killed.len();
        kill_marked_once(run, &mut killed);
        if killed.len() == before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    killed.len()
}

/// One pass over /proc: SIGKILL to every process carrying the run's id not already in
/// `killed`, which it joins.
fn kill_marked_once(run: &str, killed: &mut std::collections::HashSet<u32>) {
    let marker = format!("{RUN_ENV}={run}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if pid == me || killed.contains(&pid) {
            continue;
        }
        // Unreadable for another user's processes, which this one could not signal anyway.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        if environ.split(|byte| *byte == 0).any(|variable| variable == marker.as_bytes()) {
            if let Ok(signalled) = i32::try_from(pid) {
                // SAFETY: kill(2) on a process found above.
                if unsafe { libc::kill(signalled, libc::SIGKILL) } == 0 {
                    killed.insert(pid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_carrying_the_run_id_are_killed_and_others_are_not() {
        let mut marked = std::process::Command::new("sleep").arg("300").env(RUN_ENV, "run-under-test").spawn().unwrap();
        let mut other = std::process::Command::new("sleep").arg("300").env(RUN_ENV, "another-run").spawn().unwrap();
        // The environment is readable once exec has happened.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(kill_run_processes("run-under-test"), 1);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(marked.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(other.try_wait().unwrap().is_none(), "a process of another run is left alone");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
