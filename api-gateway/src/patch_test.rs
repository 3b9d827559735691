//! Tests of JSON merge patch and strategic merge patch.

use serde_json::json;

use super::*;

fn strategic(original: Value, patch: Value) -> Value {
    strategic_merge_patch(&original, &patch).unwrap_or_else(|e| panic!("{e}"))
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
                        },
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}
                    ]
                }
            }
        }
    })
}

#[test]
fn a_set_image_patch_changes_only_that_containers_image() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}),
    );
    let mut expected = deployment();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    assert_eq!(patched, expected);
}

#[test]
fn a_set_image_patch_on_a_pod_merges_by_container_name() {
    let pod = json!({"spec": {"containers": [
        {"name": "a", "image": "x:1"},
        {"name": "b", "image": "y:1"}
    ]}});
    let patched = strategic(
        pod,
        json!({"spec":{"containers":[{"name":"b","image":"y:2"}]}}),
    );
    assert_eq!(
        patched,
        json!({"spec": {"containers": [
            {"name": "a", "image": "x:1"},
            {"name": "b", "image": "y:2"}
        ]}})
    );
}

#[test]
fn a_container_not_in_the_object_is_appended() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"log","image":"fluent"}]}}}}),
    );
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(3));
    assert_eq!(containers[2], json!({"name":"log","image":"fluent"}));
}

#[test]
fn an_env_var_is_removed_with_patch_delete_and_the_others_kept() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[
            {"name":"web","env":[{"name":"A","$patch":"delete"}, {"name":"C","value":"3"}]}
        ]}}}}),
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
    );
}

#[test]
fn a_container_is_removed_with_patch_delete() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}),
    );
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1));
    assert_eq!(containers[0]["name"], "web");
}

#[test]
fn container_ports_merge_by_container_port_and_service_ports_by_port() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[
            {"name":"web","ports":[{"containerPort":80,"name":"http"},{"containerPort":443}]}
        ]}}}}),
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
    );

    let service = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let patched = strategic(
        service,
        json!({"spec":{"ports":[{"port":80,"targetPort":9090}]}}),
    );
    assert_eq!(
        patched["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

#[test]
fn keyed_lists_of_every_rule_merge_instead_of_replacing() {
    let cases = [
        (
            json!({"spec":{"volumes":[{"name":"a","emptyDir":{}},{"name":"b"}]}}),
            json!({"spec":{"volumes":[{"name":"b","hostPath":{"path":"/x"}}]}}),
            json!({"spec":{"volumes":[{"name":"a","emptyDir":{}},{"name":"b","hostPath":{"path":"/x"}}]}}),
        ),
        (
            json!({"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","name":"a"}]}]}}),
            json!({"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/b","name":"b"}]}]}}),
            json!({"spec":{"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","name":"a"},{"mountPath":"/b","name":"b"}]}]}}),
        ),
        (
            json!({"spec":{"initContainers":[{"name":"i","image":"a"},{"name":"j"}]}}),
            json!({"spec":{"initContainers":[{"name":"i","image":"b"}]}}),
            json!({"spec":{"initContainers":[{"name":"i","image":"b"},{"name":"j"}]}}),
        ),
        (
            json!({"spec":{"imagePullSecrets":[{"name":"a"}]}}),
            json!({"spec":{"imagePullSecrets":[{"name":"b"}]}}),
            json!({"spec":{"imagePullSecrets":[{"name":"a"},{"name":"b"}]}}),
        ),
        (
            json!({"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Scheduled","status":"True"}]}}),
            json!({"status":{"conditions":[{"type":"Ready","status":"True"}]}}),
            json!({"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"Scheduled","status":"True"}]}}),
        ),
        (
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"2","name":"b"}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"},{"uid":"2","name":"b"}]}}),
        ),
        (
            json!({"metadata":{"finalizers":["a","b"]}}),
            json!({"metadata":{"finalizers":["b","c"]}}),
            json!({"metadata":{"finalizers":["a","b","c"]}}),
        ),
    ];
    for (original, patch, expected) in cases {
        assert_eq!(strategic(original, patch.clone()), expected, "{patch}");
    }
}

#[test]
fn a_list_without_a_merge_key_is_replaced() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","args":["sleep","10"]}]}}}}),
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][1]["args"],
        json!(["sleep", "10"])
    );

    let node = json!({"spec":{"taints":[{"key":"a","effect":"NoSchedule"}]}});
    let patched = strategic(
        node,
        json!({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]}}),
    );
    assert_eq!(
        patched["spec"]["taints"],
        json!([{"key":"b","effect":"NoExecute"}])
    );

    let pod = json!({"spec":{"tolerations":[{"key":"k","effect":"NoSchedule"},{"key":"k","effect":"NoExecute"}]}});
    let patched = strategic(pod, json!({"spec":{"tolerations":[{"key":"x"}]}}));
    assert_eq!(patched["spec"]["tolerations"], json!([{"key":"x"}]));
}

#[test]
fn a_patch_replace_element_replaces_a_keyed_list() {
    let patched = strategic(
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[
            {"$patch":"replace"}, {"name":"only","image":"x"}
        ]}}}}),
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{"name":"only","image":"x"}])
    );
}

#[test]
fn patch_replace_and_delete_on_a_map() {
    let original =
        json!({"spec":{"securityContext":{"runAsUser":1,"fsGroup":2},"nodeSelector":{"a":"b"}}});
    let patched = strategic(
        original.clone(),
        json!({"spec":{"securityContext":{"$patch":"replace","runAsUser":5}}}),
    );
    assert_eq!(patched["spec"]["securityContext"], json!({"runAsUser":5}));

    let patched = strategic(
        original,
        json!({"spec":{"nodeSelector":{"$patch":"delete"}}}),
    );
    assert_eq!(
        patched,
        json!({"spec":{"securityContext":{"runAsUser":1,"fsGroup":2}}})
    );
}

#[test]
fn null_deletes_a_key_in_a_strategic_patch() {
    let patched = strategic(
        deployment(),
        json!({"metadata":{"labels":{"app":null}},"spec":{"replicas":null}}),
    );
    assert_eq!(patched["metadata"]["labels"], json!({}));
    assert!(patched["spec"].get("replicas").is_none());
}

#[test]
fn delete_from_primitive_list_removes_finalizers() {
    let original = json!({"metadata":{"finalizers":["a","b","c"]}});
    let patched = strategic(
        original,
        json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a","c"]}}),
    );
    assert_eq!(patched, json!({"metadata":{"finalizers":["b"]}}));
}

#[test]
fn retain_keys_clears_the_fields_not_listed() {
    let original =
        json!({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}});
    let patched = strategic(
        original,
        json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
    );
    assert_eq!(patched, json!({"spec":{"strategy":{"type":"Recreate"}}}));
}

#[test]
fn directives_never_reach_the_stored_object() {
    let patched = strategic(
        json!({}),
        json!({"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"name":"a","$patch":"merge"}],
               "args":[{"$patch":"merge","x":1}]}}),
    );
    assert_eq!(
        patched,
        json!({"spec":{"containers":[{"name":"a"}],"args":[{"x":1}]}})
    );
}

#[test]
fn bad_strategic_patches_are_refused_with_the_path() {
    let cases = [
        (
            json!({"spec":{"containers":[{"image":"x"}]}}),
            "element spec.containers[0] of a list merged by \"name\" has no \"name\" field",
        ),
        (
            json!({"spec":{"containers":["web"]}}),
            "element spec.containers[0] of a list merged by \"name\" must be an object, found a string",
        ),
        (
            json!({"spec":{"$patch":"remove"}}),
            "bad directive \"$patch\" at spec: unknown value \"remove\"",
        ),
        (
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}),
            "must be a list, found a string",
        ),
        (json!({"spec":{"$frobnicate":1}}), "unknown directive"),
        (
            json!({"spec":{"$retainKeys":["a"],"b":1}}),
            "the patch sets \"b\", which the list does not retain",
        ),
        (json!({"$patch":"delete"}), "use Delete"),
    ];
    for (patch, message) in cases {
        let err = strategic_merge_patch(&json!({"spec":{}}), &patch).expect_err(message);
        assert!(err.to_string().contains(message), "{patch}: {err}");
    }
}

#[test]
fn only_objects_are_patched() {
    let err = apply_patch(PatchType::Merge, &json!({}), &json!([1])).unwrap_err();
    assert_eq!(
        err,
        PatchError::NotAnObject {
            what: "the patch",
            found: "a list"
        }
    );
    let err = apply_patch(PatchType::StrategicMerge, &json!("x"), &json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the object must be a JSON object, found a string"
    );
}

#[test]
fn a_merge_patch_adds_a_label() {
    let patched = apply_patch(
        PatchType::Merge,
        &deployment(),
        &json!({"metadata":{"labels":{"tier":"front"}}}),
    )
    .unwrap();
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app":"web","tier":"front"})
    );
    assert_eq!(patched["spec"], deployment()["spec"]);
}

#[test]
fn a_merge_patch_null_deletes_a_key() {
    let patched = apply_patch(
        PatchType::Merge,
        &deployment(),
        &json!({"metadata":{"labels":{"app":null}},"spec":{"replicas":null}}),
    )
    .unwrap();
    assert_eq!(patched["metadata"]["labels"], json!({}));
    assert!(patched["spec"].get("replicas").is_none());
}

#[test]
fn a_merge_patch_replaces_lists_even_with_merge_keys() {
    let patched = apply_patch(
        PatchType::Merge,
        &deployment(),
        &json!({"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}),
    )
    .unwrap();
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{"name":"web","image":"nginx:1.26"}])
    );
}

#[test]
fn merge_patch_follows_the_rfc_7386_examples() {
    let cases = [
        (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
        (json!({"a":"b"}), json!({"a":null}), json!({})),
        (
            json!({"a":"b","b":"c"}),
            json!({"a":null}),
            json!({"b":"c"}),
        ),
        (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
        (
            json!({"a":{"b":"c"}}),
            json!({"a":{"b":"d","c":null}}),
            json!({"a":{"b":"d"}}),
        ),
        (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a":"b"}), json!(["c"]), json!(["c"])),
        (json!({"a":"foo"}), json!(null), json!(null)),
        (json!({"a":"foo"}), json!("bar"), json!("bar")),
        (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
        (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
        (
            json!({}),
            json!({"a":{"bb":{"ccc":null}}}),
            json!({"a":{"bb":{}}}),
        ),
    ];
    for (target, patch, expected) in cases {
        let mut result = target.clone();
        merge_patch(&mut result, &patch);
        assert_eq!(result, expected, "{target} + {patch}");
    }
}

#[test]
fn patch_types_are_named_by_content_type() {
    let cases = [
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json; charset=utf-8",
            Some(PatchType::StrategicMerge),
        ),
        ("Application/Merge-Patch+JSON", Some(PatchType::Merge)),
        ("application/json-patch+json", None),
        ("", None),
    ];
    for (content_type, expected) in cases {
        assert_eq!(
            PatchType::from_content_type(content_type).ok(),
            expected,
            "{content_type}"
        );
    }
    for patch_type in [PatchType::Merge, PatchType::StrategicMerge] {
        assert_eq!(
            PatchType::from_content_type(patch_type.content_type()),
            Ok(patch_type)
        );
    }
}
