//! A local cluster for one test (`rafter up --detach`), stopped with `rafter down` when
//! dropped, also when the test fails.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{rafter_with_env, Run};

/// Held while a cluster starts.
static STARTING: Mutex<()> = Mutex::new(());

/// A local cluster for one test, stopped (`rafter down`) when dropped, also on failure.
pub struct Cluster {
    pub dir: PathBuf,
    pub config: String,
}

impl Cluster {
    /// A cluster with no agents (objects only).
    pub fn start(name: &str) -> Cluster {
        Cluster::start_with(name, &["--agents", "0"])
    }

    /// A cluster started with extra `rafter up` flags (agents, runtime ...).
    pub fn start_with(name: &str, flags: &[&str]) -> Cluster {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("verbs-clusters")
            .join(name);
        // A cluster left by an earlier run must not be picked up again: its directory goes,
        // with the tmpfs volumes its agents' last pods may have left mounted in it (an agent
        // stopped right after its pods left the API has not cleaned up yet).
        detach_mounts_under(&dir);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
        }
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config").display().to_string();
        let cluster = Cluster { dir, config };
        let dir = cluster.dir.display().to_string();
        // `rafter up` picks the first free ports from 6443 and the masters bind them:
        // start one cluster at a time so two tests never pick the same ports.
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        let mut args = vec!["up", "--detach", "--dir", &dir];
        args.extend_from_slice(flags);
        let up = rafter_with_env(&args, &[]);
        assert_eq!(
            up.code, 0,
            "rafter up failed:\n{}\n{}",
            up.stdout, up.stderr
        );
        cluster
    }

    pub fn run(&self, args: &[&str]) -> Run {
        rafter_with_env(args, &[("RAFTERCONFIG", &self.config)])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![("RAFTERCONFIG", self.config.as_str())];
        all.extend_from_slice(env);
        rafter_with_env(args, &all)
    }

    /// Runs a command that must succeed and returns what it printed.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "`rafter {}` failed:\n{}\n{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Runs a command that must fail and returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_ne!(
            run.code,
            0,
            "`rafter {}` should fail:\n{}",
            args.join(" "),
            run.stdout
        );
        run.stderr
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Kills master `index` (0-based, as `DIR/cluster.json` lists them) with SIGKILL.
    pub fn kill_master(&self, index: usize) {
        let state: Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("cluster.json")).unwrap()).unwrap();
        let pid = state["masters"][index]["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("master {index} has no pid: {state}"));
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -9 {pid}");
    }

    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.display().to_string();
        let _ = rafter_with_env(&["down", "--dir", &dir], &[]);
    }
}

/// Detaches every mount under `dir` (from /proc/mounts), deepest first.
fn detach_mounts_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = std::process::Command::new("umount")
            .args(["-l", point])
            .status();
    }
}

/// Polls `check` until it returns `Some`, failing after `limit`.
pub fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
