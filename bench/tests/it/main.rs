//! The benchmark binary still works: a tiny store workload (50 operations, one client,
//! no etcd, no failover) on three member processes, and a small scheduler run (50 hollow
//! nodes, 200 pods) on three masters, whose placement the benchmark checks itself. They
//! measure nothing worth reading; they only keep `cargo test` from letting the benchmark
//! rot.

use std::process::Command;

#[test]
fn store_benchmark_runs_a_tiny_workload_on_three_member_processes() {
    let data_root = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "store",
            "--ops",
            "50",
            "--clients",
            "1",
            "--warmup",
            "0",
            "--preload",
            "20",
            "--failover-rounds",
            "0",
            "--skip-etcd",
            "--data-root",
        ])
        .arg(data_root.path())
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench store failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("| 1 | put |"), "{stdout}");
    assert!(stdout.contains("| 1 | get |"), "{stdout}");
    assert!(
        stdout.contains("(50 ops in"),
        "every measured operation succeeded: {stdout}"
    );
}

#[test]
fn scheduler_benchmark_binds_every_pod_to_a_node_that_fits() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "scheduler",
            "--nodes",
            "50",
            "--pods",
            "200",
            "--clients",
            "16",
            "--timeout",
            "120",
            // The scale run's other measures, small: node-shaped watchers and LISTs.
            "--watchers",
            "50",
            "--list-rounds",
            "3",
            "--list-size",
            "100",
            "--restart-relist",
        ])
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench scheduler failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("| 50 | 200 | 16 | 200 |"), "{stdout}");
    assert!(
        stdout.contains("read back: 200 pods bound, 0 pending; 50 of 50 nodes Ready"),
        "{stdout}"
    );
    assert!(
        stdout.contains("verified: every pod bound to an existing node"),
        "{stdout}"
    );
    assert!(stdout.contains("| leader |"), "{stdout}");
    assert!(
        stdout.contains("node watchers: 50 of 50 saw every pod bound to their node"),
        "{stdout}"
    );
    assert!(stdout.contains("LIST of 100 pods"), "{stdout}");
    assert!(stdout.contains("mutating calls while the pods"), "{stdout}");
    assert!(
        stdout.contains("a client re-listed all 200 pods from it"),
        "{stdout}"
    );
}
