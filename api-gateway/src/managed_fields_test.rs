use serde_json::json;

use super::*;

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "apps/v1",
        time: "2026-12-06T09:00:00Z",
    }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                     "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"replicas": 1}
    })
}

fn paths(set: &FieldSet) -> Vec<String> {
    set.0.iter().map(|p| path_text(p)).collect()
}

#[test]
fn a_field_set_keys_containers_by_name_and_leaves_out_status_and_server_metadata() {
    let set = FieldSet::of(&deployment(2, "nginx:1"));
    let paths = paths(&set);
    assert!(paths.contains(&".spec.replicas".to_owned()), "{paths:?}");
    assert!(
        paths.contains(&".spec.template.spec.containers[name=\"app\"].image".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&".metadata.labels.app".to_owned()),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.starts_with(".status")), "{paths:?}");
    assert!(!paths
        .iter()
        .any(|p| p.contains("uid") || p.contains("resourceVersion")));
}

#[test]
fn fields_v1_round_trips_and_marks_owned_elements_with_a_dot() {
    let set = FieldSet::of(&deployment(2, "nginx:1"));
    let v1 = set.to_fields_v1();
    let element = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert_eq!(element["."], json!({}));
    assert_eq!(element["f:image"], json!({}));
    assert_eq!(FieldSet::from_fields_v1(&v1).unwrap(), set);
}

#[test]
fn a_bad_fields_v1_entry_is_refused_naming_it() {
    let entry = ManagedFieldsEntry {
        manager: "m".into(),
        operation: UPDATE.into(),
        fields_v1: json!({"x:spec": {}}).to_string(),
        ..Default::default()
    };
    let err = read_sets(&[entry]).unwrap_err();
    assert!(
        err.to_string().contains("managedFields[0].fieldsV1"),
        "{err}"
    );
}

#[test]
fn applying_a_field_another_manager_set_differently_conflicts_naming_both() {
    let current = deployment(1, "nginx:1");
    let created = track_create(&current, &writer("kubectl-create"));
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let err = apply(&current, &created, &applied, &writer("ops"), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.replicas"
    );
    // The same value is shared, not a conflict.
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web"}, "spec": {"replicas": 1}});
    let shared = apply(&current, &created, &same, &writer("ops"), false).unwrap();
    assert_eq!(shared.entries.len(), 2);
}

#[test]
fn force_takes_the_field_from_the_other_manager() {
    let current = deployment(1, "nginx:1");
    let created = track_create(&current, &writer("kubectl-create"));
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let done = apply(&current, &created, &applied, &writer("ops"), true).unwrap();
    assert_eq!(done.object["spec"]["replicas"], json!(3));
    let sets = read_sets(&done.entries).unwrap();
    let creator = paths(&sets[0]);
    assert!(
        !creator.contains(&".spec.replicas".to_owned()),
        "{creator:?}"
    );
    assert_eq!(done.entries[1].manager, "ops");
    assert_eq!(paths(&sets[1]), vec![".spec.replicas".to_owned()]);
}

#[test]
fn a_field_no_longer_applied_is_removed_unless_another_manager_owns_it() {
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}}});
    let first = apply(
        &json!({"metadata": {"name": "web"}}),
        &[],
        &applied,
        &writer("ops"),
        false,
    )
    .unwrap();
    assert_eq!(first.object["metadata"]["labels"]["tier"], json!("front"));
    // Another manager sets a label of its own.
    let mut labelled = first.object.clone();
    labelled["metadata"]["labels"]["team"] = json!("a");
    let entries = track_update(
        &first.object,
        &labelled,
        &first.entries,
        &writer("kubectl-label"),
    )
    .unwrap();
    // The applier drops the tier label and the sidecar.
    let second_config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}});
    let second = apply(&labelled, &entries, &second_config, &writer("ops"), false).unwrap();
    let labels = &second.object["metadata"]["labels"];
    assert_eq!(labels, &json!({"app": "web", "team": "a"}));
    let containers = second.object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["name"], json!("app"));
}

#[test]
fn an_update_takes_the_fields_it_changes_from_other_managers() {
    let before = deployment(1, "nginx:1");
    let created = track_create(&before, &writer("kubectl-create"));
    let after = deployment(4, "nginx:1");
    let entries = track_update(&before, &after, &created, &writer("kubectl-scale")).unwrap();
    assert_eq!(entries.len(), 2);
    let sets = read_sets(&entries).unwrap();
    assert!(!paths(&sets[0]).contains(&".spec.replicas".to_owned()));
    assert_eq!(entries[1].manager, "kubectl-scale");
    assert_eq!(entries[1].operation, UPDATE);
    assert_eq!(paths(&sets[1]), vec![".spec.replicas".to_owned()]);
    // An apply of another replicas count now conflicts with the scaler.
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let err = apply(&after, &entries, &applied, &writer("ops"), false).unwrap_err();
    assert!(err.to_string().contains("\"kubectl-scale\""), "{err}");
    // An update that changes nothing leaves the entries as they are.
    assert_eq!(
        track_update(&after, &after, &entries, &writer("x")).unwrap(),
        entries
    );
}

#[test]
fn conflicts_with_several_fields_are_listed_one_per_line() {
    let current = deployment(1, "nginx:1");
    let created = track_create(&current, &writer("kubectl-create"));
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}});
    let err = apply(&current, &created, &applied, &writer("ops"), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-create\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );
}

#[test]
fn a_create_records_the_same_fields_as_the_field_set_does() {
    let mut object = deployment(2, "nginx:1");
    object["metadata"]["finalizers"] = json!(["a", "b"]);
    object["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 443}]);
    object["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-x"]);
    object["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "Z", "value": "1"}, {"name": "A", "value": "2"}]);
    object["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"name": "sidecar", "image": "busybox"}));
    object["metadata"]["labels"] = json!({"app": "x", "we\"ird\\key": "y"});
    object["spec"]["strategy"] = json!({});
    let created = track_create(&object, &writer("kubectl-create"));
    let direct: Value = serde_json::from_str(&created[0].fields_v1).unwrap();
    assert_eq!(direct, FieldSet::of(&object).to_fields_v1());
    // Written as it is walked, the text is also the one a JSON map would print.
    assert_eq!(
        created[0].fields_v1,
        FieldSet::of(&object).to_fields_v1().to_string()
    );
}
