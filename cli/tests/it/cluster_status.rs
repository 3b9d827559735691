//! `rafter cluster status` on a live three-master cluster: every member's health is its
//! own answer, whichever master the CLI reaches first, and a killed member shows as the
//! one unhealthy member, with why, in the table, JSON and YAML.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::cluster::{eventually, Cluster};

/// The pid `rafter up` recorded for master `id`.
fn master_pid(c: &Cluster, id: u64) -> i32 {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.dir.join("cluster.json")).unwrap())
            .unwrap();
    let pid = state["masters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for master {id}: {state}"));
    i32::try_from(pid).unwrap()
}

fn health(status: &Value) -> Vec<(u64, bool)> {
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m["healthy"] == true))
        .collect()
}

#[test]
fn cluster_status_reports_each_members_own_health_before_and_after_a_kill() {
    let c = Cluster::start("cluster-status");
    let status: Value = eventually("three healthy masters", Duration::from_secs(30), || {
        let run = c.run(&["cluster", "status", "-o", "json"]);
        let status: Value = serde_json::from_str(&run.stdout).ok()?;
        (run.code == 0 && health(&status).iter().all(|(_, healthy)| *healthy)).then_some(status)
    });
    assert_eq!(health(&status).len(), 3, "{status}");
    let leader = status["leaderId"].as_u64().unwrap();
    assert_eq!(
        status["answeredBy"], leader,
        "the membership as the leader sees it: {status}"
    );
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&c.ok(&["cluster", "status", "-o", "yaml"])).unwrap();
    assert_eq!(yaml["leaderId"].as_u64(), Some(leader));
    let table = c.ok(&["cluster", "status"]);
    assert!(
        !table.contains(" no "),
        "no member is reported unhealthy:\n{table}"
    );

    // The leader dies: the others elect a new one and report it, and the dead master
    // is the only unhealthy member, with why.
    kill(Pid::from_raw(master_pid(&c, leader)), Signal::SIGKILL).unwrap();
    let after: Value = eventually("a new leader's report", Duration::from_secs(30), || {
        let run = c.run(&["cluster", "status", "-o", "json"]);
        let status: Value = serde_json::from_str(&run.stdout).ok()?;
        let new_leader = status["leaderId"].as_u64()?;
        (new_leader != 0 && new_leader != leader && status["answeredBy"] == new_leader)
            .then_some(status)
    });
    let expected: Vec<(u64, bool)> = health(&status)
        .into_iter()
        .map(|(id, _)| (id, id != leader))
        .collect();
    assert_eq!(health(&after), expected, "{after}");
    let dead = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == leader)
        .unwrap();
    assert!(
        dead["error"].as_str().is_some_and(|e| !e.is_empty()),
        "why the dead member is unhealthy: {after}"
    );
    let table = c.ok(&["cluster", "status"]);
    // Rows of the table: `ID ROLE LEADER HEALTHY API PEER`.
    let unhealthy: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()) && l.contains(" no "))
        .collect();
    assert_eq!(unhealthy.len(), 1, "only the dead member:\n{table}");
    assert!(
        unhealthy[0].trim_start().starts_with(&leader.to_string()),
        "{table}"
    );
    assert!(table.contains(&format!("member {leader}: ")), "{table}");
}
