//! A real container engine and a real tmux server for the team tests, each private to one
//! test: podman's Docker-compatible API service on a socket in a temp directory (its own
//! storage there too, Debian's `runc` as the runtime, cgroupfs), with an image imported
//! from a tiny busybox rootfs, since no registry is reachable; and tmux on a private
//! socket. Both are stopped, and everything they started removed, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The image every test team is made from.
pub const IMAGE: &str = "localhost/cclog-test:latest";

/// podman serving the Docker Engine API on `socket`.
pub struct Engine {
    pub dir: tempfile::TempDir,
    service: Child,
}

impl Engine {
    fn podman(dir: &Path) -> Command {
        let mut command = Command::new("podman");
        command
            .env("CONTAINERS_CONF", dir.join("containers.conf"))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .args(["--storage-driver", "vfs", "--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"])
            .arg("--tmpdir")
            .arg(dir.join("tmp"));
        command
    }

    /// Starts the service and imports [`IMAGE`].
    pub fn start() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let imported = Self::podman(dir.path()).arg("import").arg(&rootfs).arg(IMAGE).output().unwrap();
        assert!(imported.status.success(), "podman import: {}", String::from_utf8_lossy(&imported.stderr));
        let socket = dir.path().join("engine.sock");
        let service = Self::podman(dir.path())
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("service.log")).unwrap()))
            .spawn()
            .expect("podman is installed (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "podman's API service did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Engine { dir, service }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("engine.sock")
    }

    /// `DOCKER_HOST` for this engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `podman ARGS…` on this engine's storage, for what a user would do behind cclog's back.
    pub fn podman_run(&self, args: &[&str]) -> std::process::Output {
        Self::podman(self.dir.path()).args(args).output().unwrap()
    }

    /// The state of container `name` as podman reports it (`running`, `exited`, …), or
    /// `None` when there is no such container.
    pub fn state(&self, name: &str) -> Option<String> {
        let output = self.podman_run(&["inspect", "--format", "{{.State.Status}}", name]);
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Containers outlive the API service; remove them before it goes.
        let _ = self.podman_run(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

/// A rootfs tar of busybox: a shell, `sleep` and the usual tools, and the directories
/// Claude Code's bind mounts land on.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for sub in ["bin", "tmp", "etc", "root", "lib", "lib64", "usr/lib", "usr/local/bin", "proc", "dev", "sys"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
    for tool in ["sh", "sleep", "cat", "echo", "ls", "env", "pwd", "mkdir", "rm", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let made = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").output().unwrap();
    assert!(made.status.success(), "tar: {}", String::from_utf8_lossy(&made.stderr));
    tar
}

/// A private tmux server (`tmux -L NAME`), killed when dropped.
pub struct TmuxServer {
    pub socket: String,
}

impl TmuxServer {
    pub fn new() -> TmuxServer {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TmuxServer { socket: format!("cclog-test-{}-{n}", std::process::id()) }
    }

    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").args(["-L", &self.socket]).args(args).output().unwrap()
    }

    /// What window `window` of session `session` shows now.
    pub fn screen(&self, session: &str, window: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", &format!("={session}:={window}")]).stdout)
            .into_owned()
    }

    /// Waits until the window shows `text`; the screen it last showed otherwise.
    pub fn wait_for(&self, session: &str, window: &str, text: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen(session, window);
            if screen.contains(text) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types `text` into the window, then Enter.
    pub fn type_line(&self, session: &str, window: &str, text: &str) {
        let target = format!("={session}:={window}");
        assert!(self.tmux(&["send-keys", "-t", &target, "-l", text]).status.success());
        std::thread::sleep(Duration::from_millis(300));
        assert!(self.tmux(&["send-keys", "-t", &target, "Enter"]).status.success());
    }

    /// Kills the whole tmux server, as a reboot would.
    pub fn kill_server(&self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        self.kill_server();
    }
}
