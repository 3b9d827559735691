//! The lifecycle contract every real backend keeps: the same scenarios run against the
//! process backend always and against containerd when `RAFTER_CONTAINERD_SOCK` is set.

use std::time::{Duration, Instant};

use node_agent::{
    AttachSpec, ContainerConfig, ContainerState, ExecEvent, ExecInput, ExecSession, ExecSpec,
    PortForwardEvent, RuntimeError, SandboxConfig, LABEL_POD_UID,
};
use rafter_proto::v1::{Container, EnvVar, ObjectMeta, Pod, PodSpec, ResourceRequirements};

use crate::harness::{
    shell, unique, wait_log, wait_state, Runtime, TestPod, BUSYBOX, TEST_NAMESPACE,
};

pub async fn a_container_runs_and_its_log_is_readable(rt: Runtime) {
    let pod = TestPod::start(&rt, "log").await;
    let id = pod
        .run(
            &rt,
            shell("app", "echo hello out; echo hello err >&2; exec sleep 300"),
        )
        .await;
    let st = wait_state(&rt, &id, ContainerState::Running).await;
    assert!(st.started_at.is_some());
    assert_eq!(st.log_path, pod.config.log_dir.join("app/0.log"));
    let lines = wait_log(&rt, &id, |l| l.len() >= 2).await;
    assert!(lines.contains(&"hello out".to_string()), "{lines:?}");
    assert!(lines.contains(&"hello err".to_string()), "{lines:?}");
    pod.cleanup(&rt).await;
}

pub async fn exit_codes_and_reasons_are_reported(rt: Runtime) {
    let pod = TestPod::start(&rt, "exit").await;
    let failing = pod.run(&rt, shell("fails", "exit 42")).await;
    let ok = pod.run(&rt, shell("succeeds", "exit 0")).await;
    let st = wait_state(&rt, &failing, ContainerState::Exited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (Some(42), "Error"));
    let (started, finished) = (st.started_at.unwrap(), st.finished_at.unwrap());
    assert!(started <= finished);
    let st = wait_state(&rt, &ok, ContainerState::Exited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (Some(0), "Completed"));
    pod.cleanup(&rt).await;
}

pub async fn a_missing_binary_is_a_start_error(rt: Runtime) {
    let pod = TestPod::start(&rt, "nobin").await;
    let mut cfg = shell("nobin", "");
    cfg.command = vec!["/no/such/binary".into()];
    let id = rt
        .create_container(&pod.sandbox.id, &cfg, &pod.config)
        .await
        .unwrap();
    let err = rt.start_container(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::StartFailed { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let st = wait_state(&rt, &id, ContainerState::Exited).await;
    assert_eq!(st.reason, "StartError", "{st:?}");
    assert_eq!(st.exit_code, Some(128));
    pod.cleanup(&rt).await;
}

pub async fn a_missing_image_is_image_not_found(rt: Runtime) {
    let image = "docker.io/local/does-not-exist:1";
    assert!(rt.image_status(image).await.unwrap().is_none());
    let err = rt.ensure_image(image).await.unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(rt.ensure_image(BUSYBOX).await.is_ok());

    let pod = TestPod::start(&rt, "noimage").await;
    let mut cfg = shell("app", "true");
    cfg.image = image.into();
    let err = rt
        .create_container(&pod.sandbox.id, &cfg, &pod.config)
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
    pod.cleanup(&rt).await;
}

pub async fn stop_ends_a_container_that_handles_sigterm_within_the_grace_period(rt: Runtime) {
    let pod = TestPod::start(&rt, "term").await;
    let id = pod
        .run(
            &rt,
            shell(
                "app",
                "trap 'echo got term; exit 0' TERM; echo ready; while :; do sleep 0.1; done",
            ),
        )
        .await;
    wait_log(&rt, &id, |l| l.iter().any(|m| m == "ready")).await;
    let t = Instant::now();
    rt.stop_container(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let st = wait_state(&rt, &id, ContainerState::Exited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (Some(0), "Completed"));
    wait_log(&rt, &id, |l| l.iter().any(|m| m == "got term")).await;
    rt.remove_container(&id).await.unwrap();
    pod.cleanup(&rt).await;
}

pub async fn stop_kills_a_container_that_ignores_sigterm_after_the_grace_period(rt: Runtime) {
    let pod = TestPod::start(&rt, "kill").await;
    let id = pod
        .run(
            &rt,
            shell("app", "trap '' TERM; echo ready; while :; do sleep 1; done"),
        )
        .await;
    wait_log(&rt, &id, |l| l.iter().any(|m| m == "ready")).await;
    let t = Instant::now();
    rt.stop_container(&id, Duration::from_secs(2))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let st = wait_state(&rt, &id, ContainerState::Exited).await;
    assert_eq!(st.exit_code, Some(137));
    pod.cleanup(&rt).await;
}

pub async fn env_working_dir_and_user_reach_the_process(rt: Runtime) {
    let pod = TestPod::start(&rt, "env").await;
    let mut cfg = shell("app", "echo \"foo=$FOO\"; pwd; id -u");
    cfg.env = vec![("FOO".into(), "bar baz".into())];
    cfg.working_dir = Some("/tmp".into());
    cfg.run_as_user = Some(65534);
    let id = pod.run(&rt, cfg).await;
    let st = wait_state(&rt, &id, ContainerState::Exited).await;
    assert_eq!(st.exit_code, Some(0), "{st:?}");
    let lines = wait_log(&rt, &id, |l| l.len() >= 3).await;
    assert_eq!(lines, vec!["foo=bar baz", "/tmp", "65534"]);
    pod.cleanup(&rt).await;
}

pub async fn exec_runs_a_command_in_a_running_container(rt: Runtime) {
    let pod = TestPod::start(&rt, "exec").await;
    let id = pod.run(&rt, shell("app", "exec sleep 300")).await;
    wait_state(&rt, &id, ContainerState::Running).await;
    let cmd: Vec<String> = ["sh", "-c", "echo probe; echo err >&2; exit 3"]
        .map(String::from)
        .to_vec();
    let out = rt
        .exec_sync(&id, &cmd, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, b"probe\n");
    assert_eq!(out.stderr, b"err\n");
    pod.cleanup(&rt).await;
}

/// What an exec session sent until its exit: (stdout, stderr, exit code).
async fn drain_session(mut session: ExecSession) -> (String, String, i32) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, session.output.recv())
            .await
            .expect("the exec ends within 30 s")
            .expect("the session ends with an exit");
        match event {
            ExecEvent::Stdout(d) => out.extend(d),
            ExecEvent::Stderr(d) => err.extend(d),
            ExecEvent::Exit { code, .. } => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    String::from_utf8_lossy(&err).into_owned(),
                    code,
                )
            }
        }
    }
}

pub async fn an_exec_session_streams_stdin_both_outputs_the_exit_code_and_a_terminal(rt: Runtime) {
    let pod = TestPod::start(&rt, "exec-stream").await;
    let id = pod.run(&rt, shell("app", "exec sleep 300")).await;
    wait_state(&rt, &id, ContainerState::Running).await;
    let spec = ExecSpec {
        command: [
            "sh",
            "-c",
            "read line; echo got $line; echo err >&2; exit 4",
        ]
        .map(String::from)
        .to_vec(),
        stdin: true,
        tty: false,
    };
    let session = rt.exec(&id, &spec).await.unwrap();
    session
        .input
        .send(ExecInput::Stdin(b"hello\n".to_vec()))
        .await
        .unwrap();
    let (out, err, code) = drain_session(session).await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("got hello\n", "err\n", 4)
    );

    let on_terminal = ExecSpec {
        command: [
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo on-a-tty; read go; stty size",
        ]
        .map(String::from)
        .to_vec(),
        stdin: true,
        tty: true,
    };
    let session = rt.exec(&id, &on_terminal).await.unwrap();
    session
        .input
        .send(ExecInput::Resize {
            width: 100,
            height: 30,
        })
        .await
        .unwrap();
    session
        .input
        .send(ExecInput::Stdin(b"go\n".to_vec()))
        .await
        .unwrap();
    let (out, _, code) = drain_session(session).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("on-a-tty"), "{out:?}");
    // containerd applies a resize on its own goroutine, so the command may read the
    // size before it: the size is checked where the resize is applied in order.
    if rt.backend() == "process" {
        assert!(
            out.contains("30 100"),
            "the resize reached the terminal: {out:?}"
        );
    }
    pod.cleanup(&rt).await;
}

pub async fn listing_shows_the_pod_uid_label_for_adoption(rt: Runtime) {
    let pod = TestPod::start(&rt, "list").await;
    let id = pod.run(&rt, shell("app", "exec sleep 300")).await;
    wait_state(&rt, &id, ContainerState::Running).await;
    let uid = pod.config.pod_uid.clone();

    let sandboxes = rt.list_sandboxes().await.unwrap();
    let sb = sandboxes
        .iter()
        .find(|s| s.id == pod.sandbox.id)
        .expect("sandbox listed");
    assert_eq!(sb.pod_uid, uid);
    assert_eq!(sb.labels[LABEL_POD_UID], uid);

    // One pod's sandboxes, and not another's.
    let other = TestPod::start(&rt, "list-other").await;
    let mine = rt.list_pod_sandboxes(&uid).await.unwrap();
    assert_eq!(
        mine.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [pod.sandbox.id.as_str()]
    );
    let other_uid = other.config.pod_uid.clone();
    let theirs = rt.list_pod_sandboxes(&other_uid).await.unwrap();
    assert_eq!(
        theirs.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [other.sandbox.id.as_str()]
    );
    other.cleanup(&rt).await;
    assert!(rt.list_pod_sandboxes(&other_uid).await.unwrap().is_empty());

    let containers = rt.list_containers(Some(&pod.sandbox.id)).await.unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].id, id);
    assert_eq!(containers[0].pod_uid(), Some(uid.as_str()));
    assert_eq!(containers[0].container_name(), "app");
    assert_eq!(containers[0].state, ContainerState::Running);
    assert!(rt
        .list_containers(None)
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == id));

    let sandbox_id = pod.sandbox.id.clone();
    pod.cleanup(&rt).await;
    assert!(!rt
        .list_sandboxes()
        .await
        .unwrap()
        .iter()
        .any(|s| s.id == sandbox_id));
}

pub async fn the_runtime_reports_its_version(rt: Runtime) {
    let v = rt.version().await.unwrap();
    assert!(
        !v.runtime_name.is_empty() && !v.runtime_version.is_empty(),
        "{v:?}"
    );
}

pub async fn a_pod_from_the_api_runs_with_its_command_args_env_and_limits(rt: Runtime) {
    let container = Container {
        name: "main".into(),
        image: "local/busybox:1".into(),
        command: vec!["sh".into(), "-c".into()],
        args: vec!["echo \"$GREETING from $(hostname)\"; exit 3".into()],
        env: vec![EnvVar {
            name: "GREETING".into(),
            value: "hi".into(),
            ..Default::default()
        }],
        resources: Some(ResourceRequirements {
            limits: [("memory", "64Mi"), ("cpu", "500m")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = Pod {
        metadata: Some(ObjectMeta {
            name: unique("api-pod"),
            namespace: TEST_NAMESPACE.into(),
            uid: unique("uid"),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            hostname: "api-host".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let logs = tempfile::tempdir().unwrap();
    let sandbox = SandboxConfig::from_pod(&pod, 0, logs.path(), &Default::default()).unwrap();
    let spec = pod.spec.as_ref().unwrap();
    let config = ContainerConfig::from_container(
        &spec.containers[0],
        "spec.containers[0]",
        0,
        spec.security_context.as_deref(),
    )
    .unwrap();
    assert_eq!(config.resources.memory_limit_bytes, Some(64 << 20));
    let test_pod = TestPod::start_with(&rt, sandbox, logs).await;
    let id = test_pod.run(&rt, config).await;
    let st = wait_state(&rt, &id, ContainerState::Exited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (Some(3), "Error"));
    let lines = wait_log(&rt, &id, |l| !l.is_empty()).await;
    // The process backend shares the host's UTS namespace, so only containerd sets it.
    let expected_host = if rt.backend() == "containerd" {
        "api-host".to_string()
    } else {
        hostname()
    };
    assert_eq!(lines, vec![format!("hi from {expected_host}")]);
    test_pod.cleanup(&rt).await;
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

pub async fn attach_streams_a_containers_output_feeds_its_stdin_and_stdin_once_closes_it(
    rt: Runtime,
) {
    let pod = TestPod::start(&rt, "attach").await;
    let config = ContainerConfig {
        stdin: true,
        stdin_once: true,
        ..shell(
            "app",
            "echo started; while read line; do echo got $line; done; echo stdin-closed",
        )
    };
    let id = pod.run(&rt, config).await;
    wait_state(&rt, &id, ContainerState::Running).await;
    let spec = AttachSpec {
        stdin: true,
        tty: false,
    };
    let mut session = rt.attach(&id, &spec).await.unwrap();
    session
        .input
        .send(ExecInput::Stdin(b"hello\n".to_vec()))
        .await
        .unwrap();
    // Output written after the attach: the answer to what it sent.
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&out).contains("got hello\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, session.output.recv())
            .await
            .expect("the answer within 30 s")
            .expect("the attach goes on")
        {
            ExecEvent::Stdout(data) => out.extend(data),
            other => panic!(
                "unexpected {other:?} after {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    // Detaching (the output dropped, as when the caller goes away, while the input is
    // still held) closes the container's stdin (stdinOnce), though it writes nothing.
    let ExecSession { input, output } = session;
    drop(output);
    let ended = wait_state(&rt, &id, ContainerState::Exited).await;
    drop(input);
    assert_eq!(ended.exit_code, Some(0));
    let lines = wait_log(&rt, &id, |l| l.len() >= 3).await;
    assert_eq!(lines, vec!["started", "got hello", "stdin-closed"]);
    pod.cleanup(&rt).await;
}

pub async fn port_forward_connects_to_a_port_in_the_pods_network(rt: Runtime) {
    let pod = TestPod::start(&rt, "port-forward").await;
    // The process backend's pods share the host's network: a port free there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = format!("/tmp/{}", unique("www"));
    let script = format!(
        "mkdir -p {dir} && echo hello-from-pod > {dir}/index.html && exec busybox httpd -f -p {port} -h {dir}"
    );
    let id = pod.run(&rt, shell("app", &script)).await;
    wait_state(&rt, &id, ContainerState::Running).await;
    let answer = crate::harness::eventually("the pod's server to answer", || async {
        let mut session = rt.port_forward(&pod.sandbox.id, port).await.ok()?;
        session
            .input
            .send(b"GET / HTTP/1.0\r\n\r\n".to_vec())
            .await
            .ok()?;
        let mut answer = Vec::new();
        while let Some(event) = session.output.recv().await {
            match event {
                PortForwardEvent::Data(data) => answer.extend(data),
                PortForwardEvent::Failed(_) => return None,
            }
        }
        Some(String::from_utf8_lossy(&answer).into_owned())
    })
    .await;
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains("hello-from-pod"),
        "{answer:?}"
    );
    // Nothing listens on port 1: an error now or the session's one failure.
    match rt.port_forward(&pod.sandbox.id, 1).await {
        Err(e) => println!("port 1: {e}"),
        Ok(mut session) => match session.output.recv().await {
            Some(PortForwardEvent::Failed(why)) => println!("port 1: {why}"),
            other => panic!("port 1 answered {other:?}"),
        },
    }
    pod.cleanup(&rt).await;
}
