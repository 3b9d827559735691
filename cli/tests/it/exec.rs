//! `rafter exec` on a `rafter up` cluster with one agent: both output streams and the
//! command's exit code, stdin passed through and closed, a user without pods/exec
//! refused by name; on host processes always, and through containerd's streaming server
//! when `RAFTER_CONTAINERD_SOCK` is set. (Stock kubectl's `exec` is in `kubectl`.)

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cluster::{eventually, Cluster};
use crate::support::Run;

const LIMIT: Duration = Duration::from_secs(90);

const SHELL: &str = "apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'exec sleep 3600']
";

/// `rafter ARGS` against `cluster`, `stdin` fed and then closed.
fn rafter_in(cluster: &Cluster, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .args(args)
        .env("RAFTERCONFIG", &cluster.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The checks every runtime passes, on a cluster whose pod `shell` was applied;
/// `reader` is a command that echoes its stdin (containerd 1.6 speaks only
/// v4.channel.k8s.io, which cannot close stdin: there it must stop by itself).
fn exec_streams_exit_codes_stdin_and_refusals(cluster: &Cluster, reader: &[&str]) {
    eventually("pod shell Running", LIMIT, || {
        let pod = cluster.json(&["get", "pod", "shell"]);
        (pod["status"]["phase"] == "Running").then_some(())
    });
    let run = cluster.run(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(run.code, 3, "the command's exit code: {}", run.stderr);
    assert_eq!(run.stdout, "out\n");
    assert_eq!(run.stderr, "err\n");

    let ok = cluster.run(&["exec", "pod/shell", "-c", "app", "--", "true"]);
    assert_eq!((ok.code, ok.stdout.as_str()), (0, ""), "{}", ok.stderr);

    let mut args = vec!["exec", "-i", "shell", "--"];
    args.extend_from_slice(reader);
    let echoed = rafter_in(cluster, &args, "hello\n");
    assert_eq!(echoed.code, 0, "{}", echoed.stderr);
    assert_eq!(echoed.stdout, "hello\n");

    // -t from a pseudo-terminal (util-linux `script`): raw mode there, a terminal in
    // the container, the size of the local one.
    if std::path::Path::new("/usr/bin/script").is_file() {
        let line = format!(
            "{} exec -it shell -- sh -c 'test -t 0 && echo on-a-tty; stty size'",
            env!("CARGO_BIN_EXE_rafter")
        );
        let output = Command::new("/usr/bin/script")
            .args(["-qec", &line, "/dev/null"])
            .env("RAFTERCONFIG", &cluster.config)
            .env("COLUMNS", "100")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("on-a-tty"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        println!("stty size on the exec's terminal: {stdout:?}");
    } else {
        println!("no /usr/bin/script: exec -t not driven");
    }

    let refused = cluster.run(&["exec", "shell", "--as", "bob", "--", "true"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("bob") && refused.stderr.contains("pods/exec"),
        "the refusal names the user and pods/exec: {}",
        refused.stderr
    );
    let missing = cluster.fails(&["exec", "shell", "-c", "db", "--", "true"]);
    assert!(missing.contains("\"db\""), "{missing}");
}

#[test]
fn rafter_exec_streams_output_stdin_and_the_exit_code_of_host_processes() {
    let cluster = Cluster::start_with("exec", &["--agents", "1", "--runtime", "process"]);
    let manifest = cluster.file("shell.yaml", SHELL);
    cluster.ok(&["apply", "-f", &manifest]);
    exec_streams_exit_codes_stdin_and_refusals(&cluster, &["cat"]);
}

#[test]
fn rafter_exec_runs_in_containerd_containers_through_its_streaming_server() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let cluster = Cluster::start_with(
        "exec-containerd",
        &[
            "--agents",
            "1",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &socket,
        ],
    );
    let manifest = cluster.file("shell.yaml", SHELL);
    cluster.ok(&["apply", "-f", &manifest]);
    exec_streams_exit_codes_stdin_and_refusals(&cluster, &["head", "-n", "1"]);
}
