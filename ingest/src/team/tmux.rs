//! tmux through its command line, with exact targets: a session is always `=NAME` (so that
//! `feat` never matches `feat-2`), windows are listed with `-F` formats, and an optional
//! private server socket (`-L NAME`) keeps cclog's sessions apart from the user's own.

use std::process::{Command, Output};

use crate::{Error, Result};

/// One window of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    /// Its program has exited; the pane stays until respawned.
    pub exited: bool,
}

/// A tmux server: the default one, or the one on socket `-L NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tmux {
    pub socket: Option<String>,
}

impl Tmux {
    pub fn new(socket: Option<String>) -> Self {
        Tmux { socket }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        if let Some(socket) = &self.socket {
            command.args(["-L", socket]);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        self.command().args(args).output().map_err(|error| Error::Tmux {
            detail: if error.kind() == std::io::ErrorKind::NotFound {
                "tmux is not installed (Debian: apt install tmux)".to_string()
            } else {
                format!("running tmux {}: {error}", args.join(" "))
            },
        })
    }

    fn checked(&self, args: &[&str]) -> Result<String> {
        let output = self.run(args)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(Error::Tmux {
            detail: format!("tmux {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
        })
    }

    /// Whether session `name` exists (exactly that name).
    pub fn has_session(&self, name: &str) -> Result<bool> {
        Ok(self.run(&["has-session", "-t", &format!("={name}")])?.status.success())
    }

    /// The session's windows in order, each with whether its program has exited (its
    /// pane kept, dead, by `remain-on-exit`); empty when there is no such session.
    pub fn windows(&self, name: &str) -> Result<Vec<Window>> {
        if !self.has_session(name)? {
            return Ok(Vec::new());
        }
        let listed =
            self.checked(&["list-windows", "-t", &format!("={name}:"), "-F", "#{pane_dead}\t#{window_name}"])?;
        Ok(listed
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(dead, window)| Window { name: window.to_string(), exited: dead == "1" })
            .collect())
    }

    /// Creates detached session `name` with one window per `(window, command)` in order,
    /// each running its command (a shell command line) in `cwd`.
    pub fn create_session(&self, name: &str, cwd: &str, windows: &[(String, String)]) -> Result<()> {
        let Some(((first, first_command), rest)) = windows.split_first() else {
            return Err(Error::InvalidTeam("a team needs at least one agent".into()));
        };
        self.checked(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-n",
            first,
            "-c",
            cwd,
            "-x",
            "200",
            "-y",
            "50",
            first_command,
        ])?;
        self.keep_on_exit(name, first)?;
        for (window, command) in rest {
            self.add_window(name, window, cwd, command)?;
        }
        Ok(())
    }

    /// Adds a window running `command` to session `name`.
    pub fn add_window(&self, name: &str, window: &str, cwd: &str, command: &str) -> Result<()> {
        self.checked(&["new-window", "-d", "-t", &format!("={name}:"), "-n", window, "-c", cwd, command])?;
        self.keep_on_exit(name, window)
    }

    /// Runs `command` again in a window whose program exited.
    pub fn respawn(&self, name: &str, window: &str, cwd: &str, command: &str) -> Result<()> {
        self.checked(&["respawn-pane", "-k", "-t", &format!("={name}:={window}"), "-c", cwd, command])?;
        Ok(())
    }

    /// A window whose program exits stays, showing why, instead of vanishing (set on the
    /// window only, so a user's own tmux settings are left alone).
    fn keep_on_exit(&self, name: &str, window: &str) -> Result<()> {
        self.checked(&["set-option", "-w", "-t", &format!("={name}:={window}"), "remain-on-exit", "on"])?;
        Ok(())
    }

    /// The command that attaches a terminal to session `name` on this server.
    pub fn attach_command(&self, name: &str) -> String {
        match &self.socket {
            Some(socket) => format!("tmux -L {} attach -t ={}", shell_quote(socket), shell_quote(name)),
            None => format!("tmux attach -t ={}", shell_quote(name)),
        }
    }

    /// Kills session `name`; one that is already gone is not an error.
    pub fn kill_session(&self, name: &str) -> Result<()> {
        if self.has_session(name)? {
            self.checked(&["kill-session", "-t", &format!("={name}")])?;
        }
        Ok(())
    }

    /// Closes a window of session `name`; one that is not there is not an error.
    pub fn kill_window(&self, name: &str, window: &str) -> Result<()> {
        if self.windows(name)?.iter().any(|open| open.name == window) {
            self.checked(&["kill-window", "-t", &format!("={name}:={window}")])?;
        }
        Ok(())
    }

    /// Types `keys` into a window of session `name`, then Enter when `enter`.
    pub fn send_keys(&self, name: &str, window: &str, keys: &str, enter: bool) -> Result<()> {
        let target = format!("={name}:={window}");
        self.checked(&["send-keys", "-t", &target, "-l", keys])?;
        if enter {
            self.checked(&["send-keys", "-t", &target, "Enter"])?;
        }
        Ok(())
    }

    /// What a window of session `name` shows now.
    pub fn capture(&self, name: &str, window: &str) -> Result<String> {
        self.checked(&["capture-pane", "-p", "-t", &format!("={name}:={window}")])
    }
}

/// Quotes `word` for the shell tmux runs a window's command with.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}
