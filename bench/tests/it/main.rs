//! The benchmark binary still works: a tiny store workload (50 operations, one client,
//! no etcd, no failover) on three member processes. It measures nothing worth reading; it
//! only keeps `cargo test` from letting the benchmark rot.

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
