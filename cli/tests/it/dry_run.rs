//! `rafter apply --dry-run=client` and `rafter validate` over the seeds' manifests: every
//! well-formed one passes and prints back in a form that parses again; every broken one
//! fails naming its file, the document and the field.

use crate::support::{rafter, seeds_dir};

/// The seeds' broken manifests and what the error must mention (besides file and document).
const BROKEN: &[(&str, &[&str])] = &[
    // `kind: Config` with tab-indented metadata: not YAML, and not an API object either.
    ("000-L0520-config.yaml", &["document 0", "tabs"]),
    // A fragment: the labels mapping ends in `...`, and the pod has no containers.
    ("002-L0163-pod.yaml", &["document 0"]),
    // `args: [10]` is a number where Kubernetes wants a string.
    (
        "002-L0492-pod.yaml",
        &["document 0", "spec.containers[0].args[0]", "quote"],
    ),
    // `name` at the wrong indentation under envFrom, and volumes inside a container.
    (
        "002-L0558-pod.yaml",
        &[
            "document 0",
            "spec.containers[0].envFrom[0].name",
            "unknown field",
        ],
    ),
    (
        "002-L0615-pod.yaml",
        &[
            "document 0",
            "spec.containers[0].envFrom[0].name",
            "unknown field",
        ],
    ),
    // certificates.k8s.io/v1beta1 is no longer served.
    (
        "002-L0974-certificatesigningrequest.yaml",
        &["document 0", "apiVersion", "certificates.k8s.io/v1"],
    ),
    // A kubeconfig (tab-indented) is not an API object.
    ("002-L1013-config.yaml", &["document 0", "tabs"]),
    // The misspelled group `extentions`.
    (
        "002-L2419-ingress.yaml",
        &[
            "document 0",
            "apiVersion",
            "unknown API group \"extentions\"",
            "networking.k8s.io/v1",
        ],
    ),
    // networking.k8s.io/v1beta1 Ingress is no longer served.
    (
        "002-L2466-ingress.yaml",
        &[
            "document 0",
            "apiVersion",
            "no longer served",
            "networking.k8s.io/v1",
        ],
    ),
];

fn seed_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(seeds_dir())
        .expect("the seeds folder exists")
        .map(|e| {
            e.expect("a readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_well_formed_seed_manifest_passes_and_prints_back_parseable_yaml() {
    let files = seed_files();
    assert!(
        files.len() >= 45,
        "expected the seeds' manifests, found {}",
        files.len()
    );
    let mut checked = 0;
    for file in files.iter().filter(|f| !BROKEN.iter().any(|(b, _)| b == f)) {
        let path = seeds_dir().join(file);
        let path = path.to_str().expect("a UTF-8 path");
        let run = rafter(
            &["apply", "--dry-run=client", "-f", path, "-o", "yaml"],
            None,
        );
        assert_eq!(run.code, 0, "{file} was refused:\n{}", run.stderr);
        assert!(
            run.stdout.contains("apiVersion:"),
            "{file} printed no object:\n{}",
            run.stdout
        );
        // The normalised form is itself a valid manifest.
        let again = rafter(&["validate", "-f", "-"], Some(&run.stdout));
        assert_eq!(
            again.code, 0,
            "the normalised {file} does not validate:\n{}\n{}",
            run.stdout, again.stderr
        );
        checked += 1;
    }
    assert!(
        checked >= 36,
        "only {checked} well-formed manifests were checked"
    );
}

#[test]
fn every_broken_seed_manifest_fails_naming_file_document_and_field() {
    let files = seed_files();
    for (file, needles) in BROKEN {
        assert!(
            files.iter().any(|f| f == file),
            "{file} is missing from the test data"
        );
        let path = seeds_dir().join(file);
        let path = path.to_str().expect("a UTF-8 path");
        let run = rafter(&["apply", "--dry-run=client", "-f", path], None);
        assert_eq!(run.code, 1, "{file} was accepted:\n{}", run.stdout);
        assert!(
            run.stderr.contains(file),
            "{file}: the error does not name the file:\n{}",
            run.stderr
        );
        for needle in *needles {
            assert!(
                run.stderr.contains(needle),
                "{file}: the error does not mention {needle:?}:\n{}",
                run.stderr
            );
        }
    }
}

#[test]
fn a_directory_reports_every_bad_document_and_exits_one() {
    let dir = seeds_dir();
    let run = rafter(
        &["validate", "-f", dir.to_str().expect("a UTF-8 path")],
        None,
    );
    assert_eq!(run.code, 1);
    for (file, _) in BROKEN {
        assert!(
            run.stderr.contains(file),
            "{file} is not reported:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr
            .contains(&format!("{} invalid object(s)", BROKEN.len())),
        "{}",
        run.stderr
    );
}

#[test]
fn multi_document_standard_input_is_normalised_with_defaults() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n";
    let run = rafter(
        &["apply", "--dry-run=client", "-f", "-", "-o", "json"],
        Some(text),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    assert_eq!(list["kind"], "List");
    let deployment = &list["items"][0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["restartPolicy"],
        "Always"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    let service = &list["items"][1];
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(service["metadata"]["namespace"], "default");
}

#[test]
fn an_invalid_object_lists_all_its_errors_with_paths() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: a\n    image: x\n  - name: a\n";
    let run = rafter(&["validate", "-f", "-"], Some(text));
    assert_eq!(run.code, 1);
    for needle in [
        "metadata.name",
        "spec.restartPolicy",
        "spec.containers[1].name",
        "spec.containers[1].image",
    ] {
        assert!(
            run.stderr.contains(needle),
            "missing {needle}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn without_a_client_config_apply_names_the_missing_file_and_how_to_get_one() {
    let missing = std::env::temp_dir().join("rafter-test-no-such-config");
    let missing = missing.to_str().expect("a UTF-8 path");
    let run = rafter(
        &["--kubeconfig", missing, "apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"),
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains(missing), "{}", run.stderr);
    assert!(run.stderr.contains("rafter up"), "{}", run.stderr);
}

#[test]
fn help_and_version_work() {
    let run = rafter(&["--help"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("apply"));
    let run = rafter(&["apply", "--help"], None);
    assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
    let run = rafter(&["version"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("rafter"));
}
