//! `rafter config` over a temporary client config file: viewing redacts secrets, contexts
//! switch and change, the file stays private, and a missing file is named.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Run;

const CONFIG: &str = "apiVersion: v1
kind: Config
current-context: admin@dev
clusters:
- name: dev
  cluster:
    servers: [https://127.0.0.1:6443, https://127.0.0.1:6444, https://127.0.0.1:6445]
    certificate-authority: ca.crt
users:
- name: admin
  user:
    token: very-secret-token
- name: viewer
  user:
    token: another-secret
contexts:
- name: admin@dev
  context: {cluster: dev, user: admin}
- name: viewer@dev
  context: {cluster: dev, user: viewer, namespace: web}
";

/// A fresh folder holding the config above, for one test.
fn config_file(test: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("config-tests")
        .join(test);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("config");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

/// Runs `rafter` with `args` and the environment variables `env`.
fn rafter_env(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rafter"));
    command.args(args).env_remove("RAFTERCONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("rafter runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn with_file(path: &Path, args: &[&str]) -> Run {
    let path = path.to_str().unwrap();
    let mut all = vec!["config", "--kubeconfig", path];
    all.extend_from_slice(args);
    rafter_env(&all, &[])
}

#[test]
fn view_redacts_tokens_unless_raw_and_minify_keeps_the_current_context() {
    let path = config_file("view");
    let run = with_file(&path, &["view"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("very-secret-token"), "{}", run.stdout);
    assert!(run.stdout.contains("REDACTED"), "{}", run.stdout);
    assert!(
        run.stdout.contains("https://127.0.0.1:6444"),
        "{}",
        run.stdout
    );

    let run = with_file(&path, &["view", "--raw", "--minify"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("very-secret-token"), "{}", run.stdout);
    assert!(!run.stdout.contains("viewer"), "{}", run.stdout);
}

#[test]
fn use_context_switches_and_get_contexts_marks_the_current_one() {
    let path = config_file("use");
    let run = with_file(&path, &["current-context"]);
    assert_eq!(run.stdout, "admin@dev\n");

    let run = with_file(&path, &["use-context", "viewer@dev"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = rafter_env(&["config", "current-context"], &[("RAFTERCONFIG", &path)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "viewer@dev\n", "read through $RAFTERCONFIG");

    let run = with_file(&path, &["get-contexts"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("CURRENT"), "{}", run.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('*') && l.contains("viewer@dev") && l.contains("web")),
        "{}",
        run.stdout
    );
    let run = with_file(&path, &["get-contexts", "-o", "name"]);
    assert_eq!(run.stdout, "admin@dev\nviewer@dev\n");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the rewritten file is private");
    }

    let run = with_file(&path, &["use-context", "ghost"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("\"ghost\" is not defined"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(path.to_str().unwrap()),
        "{}",
        run.stderr
    );
}

#[test]
fn set_context_changes_the_namespace_of_the_current_context() {
    let path = config_file("set");
    let run = with_file(
        &path,
        &["set-context", "--current", "--namespace", "kube-system"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = with_file(&path, &["view"]);
    assert!(
        run.stdout.contains("namespace: kube-system"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("namespace: web"),
        "other contexts unchanged: {}",
        run.stdout
    );
    let run = with_file(&path, &["set-context", "--current"]);
    assert_eq!(run.code, 1, "nothing to set");
}

#[test]
fn a_missing_config_file_is_named() {
    let path = config_file("missing").with_file_name("nowhere");
    let run = with_file(&path, &["view"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(path.to_str().unwrap()),
        "{}",
        run.stderr
    );
}

#[test]
fn every_config_verb_has_help_with_an_example() {
    for verb in [
        "view",
        "use-context",
        "set-context",
        "get-contexts",
        "current-context",
    ] {
        let run = rafter_env(&["config", verb, "--help"], &[]);
        assert_eq!(run.code, 0, "{verb}: {}", run.stderr);
        assert!(
            run.stdout.contains("rafter config"),
            "{verb}: {}",
            run.stdout
        );
    }
}
