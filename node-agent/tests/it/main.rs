//! Integration tests of the container runtimes, one binary, grouped by topic.
//!
//! - `bootstrap`: TLS bootstrap of the node's client certificate against a TLS gateway;
//! - `lifecycle`: scenarios every real backend passes, instantiated below for the process
//!   backend (always) and containerd (when `RAFTER_CONTAINERD_SOCK` is set);
//! - `containerd_only`: limits, OOM, networking, cgroups, adoption by a fresh client;
//! - `process_only`: reaping what a crashed agent left running;
//! - `images`: importing OCI tarballs, and a runtime that is down;
//! - `image_gc`: image garbage collection past the high threshold, and `--images-dir`;
//! - `registry`: a real registry (TLS from a test CA, htpasswd) started by the test;
//! - `image_pulls`: pods pulling from that registry through a private containerd — pull
//!   Secrets, ErrImagePull/ImagePullBackOff with the registry's reason, pull policies;
//! - `hollow`: the scale-test backend;
//! - `agent` (with `cluster`): the whole agent against an in-process gateway — pods
//!   run, init containers, CrashLoopBackOff, liveness restarts, volumes (secrets on
//!   tmpfs, unmounted at deletion and after a restart), deletion,
//!   adoption after an agent restart, ErrImagePull, node and lease, static pods;
//! - `service_account`: the projected ServiceAccount token volume on containerd, and opting
//!   out;
//! - `fake_api`: a scripted fake API with switchable faults, for the agent's own loops;
//! - `logs`: pods/log through the gateway from the agent's log endpoint (`Client::logs`);
//! - `metrics`: measured usage through the gateway from the agent's metrics endpoint (`Client::metrics`);
//! - `pod_cidr`: the node's pod CIDR reaches containerd's CNI template (a private containerd);
//! - `pod_features`: `$(VAR)` expansion, startupProbe, log rotation, on every backend;
//! - `proxy_netns`: the node proxy's nftables rules in a network namespace the test makes;
//! - `proxy_agent`: the proxy in a running agent — userspace mode on the process backend,
//!   nftables mode with containerd pods behind ClusterIP, NodePort and LoadBalancer;
//!
//! To run the containerd half locally:
//! ```text
//! export RAFTER_CONTAINERD_SOCK=$(scripts/containerd-setup.sh /tmp/rafter-containerd | tail -1)
//! cargo test -p node-agent
//! ```

// reason: test code, a panic is the failure report; clippy.toml lets #[test] functions
// unwrap, but not the fixtures and helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod bootstrap;
mod cluster;
mod containerd_only;
mod dns;
mod fake_api;
mod harness;
mod hollow;
mod image_gc;
mod image_pulls;
mod images;
mod lifecycle;
mod logs;
mod metrics;
mod pod_cidr;
mod pod_features;
mod pod_routes;
mod process_only;
mod proxy_agent;
mod proxy_netns;
mod registry;
mod service_account;

/// Instantiates each `lifecycle` scenario once per backend, as
/// `process_backend::<scenario>` and `containerd_backend::<scenario>`.
macro_rules! for_each_backend {
    ($($scenario:ident),* $(,)?) => {
        mod process_backend {
            $(
                #[tokio::test]
                async fn $scenario() {
                    crate::lifecycle::$scenario(crate::harness::process()).await;
                }
            )*
        }
        mod containerd_backend {
            $(
                #[tokio::test]
                async fn $scenario() {
                    if let Some(rt) = crate::harness::containerd().await {
                        crate::lifecycle::$scenario(rt).await;
                    }
                }
            )*
        }
    };
}

for_each_backend!(
    a_container_runs_and_its_log_is_readable,
    exit_codes_and_reasons_are_reported,
    a_missing_binary_is_a_start_error,
    a_missing_image_is_image_not_found,
    stop_ends_a_container_that_handles_sigterm_within_the_grace_period,
    stop_kills_a_container_that_ignores_sigterm_after_the_grace_period,
    env_working_dir_and_user_reach_the_process,
    exec_runs_a_command_in_a_running_container,
    an_exec_session_streams_stdin_both_outputs_the_exit_code_and_a_terminal,
    attach_streams_a_containers_output_feeds_its_stdin_and_stdin_once_closes_it,
    port_forward_connects_to_a_port_in_the_pods_network,
    listing_shows_the_pod_uid_label_for_adoption,
    the_runtime_reports_its_version,
    a_pod_from_the_api_runs_with_its_command_args_env_and_limits,
);

/// Instantiates each `agent` scenario once per backend, as
/// `agent_process::<scenario>` and `agent_containerd::<scenario>`.
macro_rules! for_each_agent_backend {
    ($($scenario:ident),* $(,)?) => {
        mod agent_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    crate::agent::$scenario(crate::harness::process()).await;
                }
            )*
        }
        mod agent_containerd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(rt) = crate::harness::containerd().await {
                        crate::agent::$scenario(rt).await;
                    }
                }
            )*
        }
    };
}

for_each_agent_backend!(
    a_bound_pod_runs_and_reaches_running_with_a_pod_ip,
    an_init_container_runs_before_the_app,
    a_crashing_container_goes_to_crash_loop_back_off_with_growing_restart_count,
    a_liveness_probe_failure_restarts_the_container,
    a_config_map_volume_shows_its_keys_as_files,
    deleting_the_pod_stops_its_containers_and_removes_the_object,
    an_agent_restart_adopts_running_containers_without_restarting_them,
    a_missing_image_is_reported_as_err_image_pull,
    a_missing_image_with_pull_policy_never_is_err_image_never_pull,
    a_secret_volume_is_a_tmpfs_mount_until_the_pod_is_deleted,
    an_agent_restart_unmounts_the_secret_volumes_of_pods_that_are_gone,
);

/// The pod-spec features of `pod_features`, once per backend, as
/// `features_process::<scenario>` and `features_containerd::<scenario>`.
macro_rules! for_each_feature_backend {
    ($($scenario:ident),* $(,)?) => {
        mod features_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    crate::pod_features::$scenario(crate::harness::process()).await;
                }
            )*
        }
        mod features_containerd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(rt) = crate::harness::containerd().await {
                        crate::pod_features::$scenario(rt).await;
                    }
                }
            )*
        }
    };
}

for_each_feature_backend!(
    command_args_and_env_values_expand_var_references,
    a_startup_probe_holds_liveness_and_readiness_until_it_succeeds,
    a_startup_probe_that_keeps_failing_restarts_the_container,
    a_log_past_its_cap_is_rotated_and_old_content_is_bounded,
    a_claims_data_outlives_the_pod_that_wrote_it,
);

mod agent_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_and_lease_appear_and_the_lease_renews() {
        crate::agent::node_and_lease_appear_and_the_lease_renews(crate::harness::process()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_static_pod_runs_and_is_mirrored_in_the_api() {
        crate::agent::a_static_pod_runs_and_is_mirrored_in_the_api(crate::harness::process()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runtime_that_is_down_makes_the_node_not_ready() {
        crate::agent::a_runtime_that_is_down_makes_the_node_not_ready().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_agent_lists_again_after_a_failed_list_and_an_expired_watch() {
        crate::agent::the_agent_lists_again_after_a_failed_list_and_an_expired_watch().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_running_pod_costs_the_runtime_almost_no_calls() {
        crate::agent::an_idle_running_pod_costs_the_runtime_almost_no_calls().await;
    }
}

mod proxy_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_userspace_proxy_spreads_node_port_connections_and_follows_changes() {
        crate::proxy_agent::the_userspace_proxy_spreads_node_port_connections_and_follows_changes(
            crate::harness::process(),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containerd_pods_answer_through_cluster_ip_node_port_load_balancer_and_hairpin() {
        if let Some(rt) = crate::harness::containerd().await {
            crate::proxy_agent::pods_behind_services_through_nftables(rt).await;
        }
    }
}
