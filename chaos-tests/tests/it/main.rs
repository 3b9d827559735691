//! Fault tests on real multi-process clusters. One property per file.

// reason: test code, a panic is the failure report; clippy.toml lets #[test] functions
// unwrap, but not the fixtures and helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod a_cron_jobs_ticks_each_run_once_across_a_leader_kill;
mod a_dead_master_is_replaced_with_the_cli;
mod a_paused_leader_delays_writes_by_less_than_four_seconds;
mod a_pods_service_account_token_gets_only_its_binding;
mod acknowledged_writes_survive_leader_kills;
mod an_indexed_jobs_indexes_each_run_once_across_a_leader_kill;
mod client_carries_on_when_masters_die;
mod controllers_converge_across_leader_kills;
mod each_identity_gets_only_what_it_is_granted;
mod every_kind_round_trips_through_three_masters;
mod masters_compact_history_they_no_longer_keep;
mod rolling_update_keeps_enough_pods_ready;
mod rotated_keys_keep_secrets_readable_across_restarts;
mod secrets_are_ciphertext_in_every_file_and_backup;
mod services_never_share_a_cluster_ip_or_node_port;
mod snapshot_restore_seeds_a_new_cluster;
mod support;
mod values_outside_a_changed_range_are_reported;
