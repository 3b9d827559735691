//! Tests of label and field selectors: parsing, errors, matching and printing.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::v1::{LabelSelector, LabelSelectorRequirement};

fn labels(pairs: &[(&str, &str)]) -> crate::StringMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn every_label_selector_form_parses_to_its_requirements() {
    let cases: &[(&str, &str, Operator)] = &[
        ("app=web", "app", Operator::Equals("web".into())),
        ("app==web", "app", Operator::Equals("web".into())),
        ("tier!=db", "tier", Operator::NotEquals("db".into())),
        (
            "env in (prod, staging)",
            "env",
            Operator::In(set(&["prod", "staging"])),
        ),
        ("env notin (dev)", "env", Operator::NotIn(set(&["dev"]))),
        ("gpu", "gpu", Operator::Exists),
        ("!gpu", "gpu", Operator::DoesNotExist),
        ("  ! gpu  ", "gpu", Operator::DoesNotExist),
        ("app=", "app", Operator::Equals(String::new())),
        ("env in ()", "env", Operator::In(set(&[""]))),
        ("env in (a,)", "env", Operator::In(set(&["", "a"]))),
        (
            "example.com/tier = front-end",
            "example.com/tier",
            Operator::Equals("front-end".into()),
        ),
    ];
    for (text, key, operator) in cases {
        let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(selector.requirements().len(), 1, "{text}");
        let requirement = &selector.requirements()[0];
        assert_eq!(requirement.key(), *key, "{text}");
        assert_eq!(requirement.operator(), operator, "{text}");
    }
}

#[test]
fn conjunctions_are_sorted_by_key_and_print_canonically() {
    let cases = [
        ("tier!=db, app==web", "app=web,tier!=db"),
        (
            "env in (staging,prod),!canary,gpu",
            "!canary,env in (prod,staging),gpu",
        ),
        ("  ", ""),
        ("", ""),
        ("a in ( x , y )", "a in (x,y)"),
    ];
    for (text, canonical) in cases {
        let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(selector.to_string(), canonical, "{text}");
    }
}

#[test]
fn syntax_errors_point_at_the_offending_character() {
    let cases = [
        ("app=web,", 9, "expected a label key or '!'"),
        ("env in (prod", 13, "expected ',' or ')'"),
        ("env in prod", 8, "expected '('"),
        ("app web", 5, "expected an operator"),
        ("app=web x", 9, "expected ',' or the end"),
        ("!", 2, "expected a label key after '!'"),
        ("=web", 1, "expected a label key or '!'"),
        ("app=(x)", 5, "expected a label value"),
        ("env in (a b)", 11, "expected ',' or ')'"),
        ("env in (=)", 9, "expected a label value, ',' or ')'"),
    ];
    for (text, column, message) in cases {
        match Selector::parse(text) {
            Err(SelectorError::Syntax {
                column: got,
                message: got_message,
                selector,
            }) => {
                assert_eq!(got, column, "{text}: {got_message}");
                assert!(got_message.starts_with(message), "{text}: {got_message}");
                assert_eq!(selector, text);
            }
            other => panic!("{text}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn invalid_keys_and_values_are_refused_with_the_reason() {
    let long = "a".repeat(64);
    let cases = [
        ("-app=web".to_owned(), "start and end"),
        ("app_=web".to_owned(), "start and end"),
        (format!("{long}=x"), "at most 63"),
        ("Example.com/app=x".to_owned(), "DNS subdomain"),
        ("/app=x".to_owned(), "prefix before '/' must not be empty"),
        ("example.com/=x".to_owned(), "name part must not be empty"),
        ("a/b/c=x".to_owned(), "at most one '/'"),
        ("app=we$b".to_owned(), "'$' is not allowed"),
        (format!("app={long}"), "at most 63"),
        ("app in (ok,-bad)".to_owned(), "start and end"),
    ];
    for (text, reason) in cases {
        let err = Selector::parse(&text).expect_err(&text);
        assert!(
            matches!(
                err,
                SelectorError::InvalidKey { .. } | SelectorError::InvalidValue { .. }
            ),
            "{text}: {err:?}"
        );
        assert!(err.to_string().contains(reason), "{text}: {err}");
    }
}

#[test]
fn requirements_match_labels_with_kubernetes_semantics() {
    let web_prod = labels(&[("app", "web"), ("env", "prod")]);
    let bare = labels(&[]);
    let cases = [
        ("app=web", true, false),
        ("app!=web", false, true),
        ("app!=db", true, true),
        ("env in (prod,staging)", true, false),
        ("env notin (prod)", false, true),
        ("env notin (dev)", true, true),
        ("app", true, false),
        ("!app", false, true),
        ("app=web,env=dev", false, false),
        ("", true, true),
    ];
    for (text, on_web_prod, on_bare) in cases {
        let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            selector.matches(&web_prod),
            on_web_prod,
            "{text} on app=web,env=prod"
        );
        assert_eq!(selector.matches(&bare), on_bare, "{text} on no labels");
    }
}

#[test]
fn an_empty_label_selector_matches_everything_and_a_missing_one_nothing() {
    let any = labels(&[("app", "web")]);
    let empty = Selector::from_label_selector(&LabelSelector::default()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.matches(&any));
    assert!(empty.matches(&labels(&[])));

    let missing = Selector::from_optional_label_selector(None).unwrap();
    assert!(missing.is_nothing());
    assert!(!missing.is_empty());
    assert!(!missing.matches(&any));
    assert!(!missing.matches(&labels(&[])));
    assert!(
        Selector::parse(&missing.to_string()).is_err(),
        "nothing must never print as a selector that parses"
    );
}

fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn an_api_label_selector_combines_match_labels_and_expressions() {
    let api = LabelSelector {
        match_labels: labels(&[("app", "web")]),
        match_expressions: vec![
            expression("env", "In", &["prod", "staging"]),
            expression("canary", "DoesNotExist", &[]),
            expression("tier", "NotIn", &["db"]),
            expression("gpu", "Exists", &[]),
        ],
    };
    let selector = Selector::from_optional_label_selector(Some(&api)).unwrap();
    assert_eq!(
        selector.to_string(),
        "app=web,!canary,env in (prod,staging),gpu,tier notin (db)"
    );
    assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod"), ("gpu", "")])));
    assert!(!selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
}

#[test]
fn bad_api_label_selector_expressions_are_refused() {
    let cases = [
        (
            expression("env", "in", &["prod"]),
            "invalid operator \"in\"",
        ),
        (expression("env", "Gt", &["1"]), "invalid operator \"Gt\""),
        (expression("env", "In", &[]), "needs at least one value"),
        (expression("env", "NotIn", &[]), "needs at least one value"),
        (expression("env", "Exists", &["x"]), "takes no values"),
        (expression("e nv", "Exists", &[]), "invalid label key"),
    ];
    for (expression, message) in cases {
        let api = LabelSelector {
            match_labels: crate::StringMap::new(),
            match_expressions: vec![expression.clone()],
        };
        let err = Selector::from_label_selector(&api).expect_err(&expression.operator);
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn a_map_selector_requires_every_label() {
    let selector = Selector::from_labels(&labels(&[("app", "web"), ("tier", "front")])).unwrap();
    assert_eq!(selector.to_string(), "app=web,tier=front");
    assert!(selector.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
    assert!(!selector.matches(&labels(&[("app", "web")])));
}

// ---------------------------------------------------------------------------- fields

fn pod(name: &str, namespace: &str, node: &str, phase: &str) -> Object {
    Object::Pod(v1::Pod {
        metadata: Some(v1::ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            node_name: node.into(),
            ..Default::default()
        }),
        status: Some(v1::PodStatus {
            phase: phase.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[test]
fn field_selectors_match_pods_by_name_namespace_node_and_phase() {
    let running = pod("web-1", "default", "n1", "Running");
    let unscheduled = Object::Pod(v1::Pod::default());
    let cases = [
        ("metadata.name=web-1", true, false),
        ("metadata.name==web-1", true, false),
        ("metadata.namespace!=kube-system", true, true),
        ("spec.nodeName=n1", true, false),
        ("spec.nodeName=", false, true),
        ("spec.nodeName!=", true, false),
        ("status.phase=Running", true, false),
        ("status.phase!=Running, spec.nodeName=n1", false, false),
        ("", true, true),
    ];
    for (text, on_running, on_unscheduled) in cases {
        let selector = FieldSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        selector.check(Kind::Pod).unwrap();
        assert_eq!(
            selector.matches(&running),
            on_running,
            "{text} on running pod"
        );
        assert_eq!(
            selector.matches(&unscheduled),
            on_unscheduled,
            "{text} on empty pod"
        );
    }
}

#[test]
fn field_selectors_match_events_nodes_and_secrets() {
    let event = Object::Event(v1::Event {
        involved_object: Some(v1::ObjectReference {
            kind: "Pod".into(),
            name: "web-1".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        r#type: "Warning".into(),
        ..Default::default()
    });
    let cordoned = Object::Node(v1::Node {
        spec: Some(v1::NodeSpec {
            unschedulable: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let secret = Object::Secret(v1::Secret {
        r#type: "kubernetes.io/service-account-token".into(),
        ..Default::default()
    });
    let cases = [
        (
            &event,
            "involvedObject.kind=Pod,involvedObject.name=web-1,involvedObject.namespace=default",
            true,
        ),
        (&event, "involvedObject.name=web-2", false),
        (&event, "type=Warning", true),
        (&cordoned, "spec.unschedulable=true", true),
        (&cordoned, "spec.unschedulable=false", false),
        (&secret, "type=kubernetes.io/service-account-token", true),
        (&secret, "type!=Opaque", true),
    ];
    for (object, text, expected) in cases {
        let selector = FieldSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        selector.check(object.kind()).unwrap();
        assert_eq!(selector.matches(object), expected, "{text}");
    }
}

#[test]
fn an_unsupported_field_is_refused_naming_the_supported_ones() {
    let selector = FieldSelector::parse("spec.nodeName=n1").unwrap();
    let err = selector
        .check(Kind::Service)
        .expect_err("services have no nodeName");
    let message = err.to_string();
    assert!(message.contains("\"spec.nodeName\""), "{message}");
    assert!(message.contains("Service"), "{message}");
    assert!(
        message.contains("metadata.name, metadata.namespace"),
        "{message}"
    );
    assert!(!selector.matches(&Object::Service(v1::Service::default())));
}

#[test]
fn every_supported_field_has_a_value_on_every_kind() {
    for kind in Kind::all() {
        let object = Object::decode(kind, &[]).unwrap();
        for field in supported_fields(kind) {
            assert!(
                field_value(&object, field).is_some(),
                "{kind} field {field} has no getter"
            );
        }
    }
}

#[test]
fn field_selector_syntax_errors_point_at_the_term() {
    let cases = [
        ("metadata.name", 1, "expected field=value"),
        ("metadata.name=a,,", 17, "expected field=value"),
        ("status.phase=Running,spec node=x", 22, "not a field path"),
        ("=x", 1, "not a field path"),
        ("metadata.name=a\\b", 16, "invalid escape"),
        ("metadata.name=a\\", 16, "lone"),
    ];
    for (text, column, message) in cases {
        match FieldSelector::parse(text) {
            Err(SelectorError::Syntax {
                column: got,
                message: got_message,
                ..
            }) => {
                assert_eq!(got, column, "{text}: {got_message}");
                assert!(got_message.contains(message), "{text}: {got_message}");
            }
            other => panic!("{text}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn field_values_with_commas_and_equals_are_escaped() {
    let selector = FieldSelector::parse("metadata.name=a\\,b\\=c\\\\d , type!=x=y").unwrap();
    assert_eq!(selector.requirements()[0].value(), "a,b=c\\d");
    assert_eq!(selector.requirements()[1].value(), "x=y");
    assert_eq!(
        selector.to_string(),
        "metadata.name=a\\,b\\=c\\\\d,type!=x\\=y"
    );
    assert_eq!(selector.exact_value("metadata.name"), Some("a,b=c\\d"));
    assert_eq!(selector.exact_value("type"), None);
}

// ---------------------------------------------------------------------------- round trip

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?"
}

fn key_strategy() -> impl Strategy<Value = String> {
    (
        proptest::option::of("[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,5}){0,2}"),
        name_strategy(),
    )
        .prop_map(|(prefix, name)| match prefix {
            Some(prefix) => format!("{prefix}/{name}"),
            None => name,
        })
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![1 => Just(String::new()), 4 => name_strategy()]
}

fn operator_strategy() -> impl Strategy<Value = Operator> {
    let values = || proptest::collection::btree_set(value_strategy(), 1..4);
    prop_oneof![
        value_strategy().prop_map(Operator::Equals),
        value_strategy().prop_map(Operator::NotEquals),
        values().prop_map(Operator::In),
        values().prop_map(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
    ]
}

fn selector_strategy() -> impl Strategy<Value = Selector> {
    proptest::collection::vec((key_strategy(), operator_strategy()), 0..5).prop_map(|pairs| {
        Selector::new(
            pairs
                .into_iter()
                .map(|(key, op)| Requirement::new(key, op).unwrap())
                .collect(),
        )
    })
}

fn field_selector_strategy() -> impl Strategy<Value = FieldSelector> {
    let field = "[a-z][A-Za-z0-9]{0,6}(\\.[a-z][A-Za-z0-9]{0,6}){0,2}";
    let value = "([-a-zA-Z0-9,=\\\\!/.]([-a-zA-Z0-9,=\\\\! /.]{0,8}[-a-zA-Z0-9,=\\\\!/.])?)?";
    let op = prop_oneof![Just(FieldOperator::Equals), Just(FieldOperator::NotEquals)];
    proptest::collection::vec((field, op, value), 0..4).prop_map(|terms| {
        FieldSelector::new(
            terms
                .into_iter()
                .map(|(f, op, v)| FieldRequirement::new(f, op, v).unwrap())
                .collect(),
        )
    })
}

proptest! {
    #[test]
    fn a_printed_label_selector_parses_back_to_an_equal_selector(selector in selector_strategy()) {
        let text = selector.to_string();
        let parsed = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed, selector, "{}", text);
    }

    #[test]
    fn a_printed_field_selector_parses_back_to_an_equal_selector(selector in field_selector_strategy()) {
        let text = selector.to_string();
        let parsed = FieldSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed, selector, "{}", text);
    }
}
