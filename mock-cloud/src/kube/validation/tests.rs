//! Exact upstream texts for object-meta and format checks.

use super::*;
use serde_json::json;

fn info(group: &str, kind: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        group: group.to_string(),
        version: "v1".to_string(),
        kind: kind.to_string(),
        plural: format!("{}s", kind.to_lowercase()),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: vec![],
        categories: vec![],
        status_subresource: false,
        verbs: vec![],
        custom: false,
        printer_columns: vec![],
        schema: None,
    }
}

fn rendered(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

#[test]
fn service_names_are_dns1035_labels() {
    let svc = info("", "Service", true);
    let cases: &[(&str, &[&str])] = &[
        ("web", &[]),
        ("a-1", &[]),
        (
            "Bad_Name",
            &[
                "metadata.name: Invalid value: \"Bad_Name\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
        (
            "1abc",
            &[
                "metadata.name: Invalid value: \"1abc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
    ];
    for (name, want) in cases {
        let obj = json!({"metadata": {"name": name, "namespace": "default"}});
        assert_eq!(
            rendered(&validate_object_meta(&svc, &obj)),
            *want,
            "name {name}"
        );
    }
}

#[test]
fn long_names_report_length_and_format() {
    let svc = info("", "Service", true);
    let name = "a".repeat(64);
    let obj = json!({"metadata": {"name": name, "namespace": "default"}});
    let causes = validate_object_meta(&svc, &obj);
    assert_eq!(causes.len(), 1);
    assert_eq!(
        causes[0].message,
        format!("Invalid value: \"{name}\": must be no more than 63 characters")
    );
}

#[test]
fn name_rules_per_kind() {
    let cases: &[(&str, &str, bool, &str, bool)] = &[
        ("", "Namespace", false, "my-ns", true),
        ("", "Namespace", false, "my.ns", false),
        ("", "ConfigMap", true, "kube-root-ca.crt", true),
        ("", "ConfigMap", true, "Upper", false),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            "system:controller:x",
            true,
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            "a/b",
            false,
        ),
        ("", "Service", true, "a.b", false),
    ];
    for (group, kind, namespaced, name, ok) in cases {
        let i = info(group, kind, *namespaced);
        let meta = if *namespaced {
            json!({"metadata": {"name": name, "namespace": "default"}})
        } else {
            json!({"metadata": {"name": name}})
        };
        assert_eq!(
            validate_object_meta(&i, &meta).is_empty(),
            *ok,
            "{kind} {name}"
        );
    }
}

#[test]
fn name_or_generate_name_required() {
    let cm = info("", "ConfigMap", true);
    let causes = validate_object_meta(&cm, &json!({"metadata": {"namespace": "default"}}));
    assert_eq!(
        rendered(&causes),
        ["metadata.name: Required value: name or generateName is required"]
    );
    let ok =
        json!({"metadata": {"generateName": "web-", "name": "web-x1z2", "namespace": "default"}});
    assert!(validate_object_meta(&cm, &ok).is_empty());
}

#[test]
fn namespace_scope() {
    let cm = info("", "ConfigMap", true);
    assert_eq!(
        rendered(&validate_object_meta(
            &cm,
            &json!({"metadata": {"name": "a"}})
        )),
        ["metadata.namespace: Required value"]
    );
    let node = info("", "Node", false);
    assert_eq!(
        rendered(&validate_object_meta(
            &node,
            &json!({"metadata": {"name": "n", "namespace": "x"}})
        )),
        ["metadata.namespace: Forbidden: not allowed on this type"]
    );
}

#[test]
fn labels_and_annotations() {
    let cm = info("", "ConfigMap", true);
    let obj = json!({"metadata": {"name": "a", "namespace": "default",
        "labels": {"app": "web", "bad key!": "x", "ok": "-bad"},
        "annotations": {"Example.COM/Key": "fine", "a/b/c": "x"}}});
    let got = rendered(&validate_object_meta(&cm, &obj));
    assert_eq!(
        got,
        [
            "metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ]
    );
}

#[test]
fn qualified_name_prefix() {
    assert!(is_qualified_name("example.com/name").is_empty());
    assert_eq!(
        is_qualified_name("/name"),
        ["prefix part must be non-empty"]
    );
    assert_eq!(is_qualified_name("Example.com/name").len(), 1);
    assert!(
        is_qualified_name("Example.com/name")[0]
            .starts_with("prefix part a lowercase RFC 1123 subdomain")
    );
    assert_eq!(is_qualified_name("x/").len(), 2);
}

#[test]
fn finalizers_and_owner_refs() {
    let cm = info("", "ConfigMap", true);
    let obj = json!({"metadata": {"name": "a", "namespace": "default",
        "finalizers": ["service.kubernetes.io/load-balancer-cleanup", "bad/x/y"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": ""}]}});
    let got = rendered(&validate_object_meta(&cm, &obj));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
    );
    assert!(
        got[1].starts_with("metadata.finalizers: Invalid value: \"bad/x/y\": a qualified name")
    );
}

#[test]
fn port_names() {
    assert!(is_valid_port_name("http").is_empty());
    assert_eq!(
        is_valid_port_name("8080"),
        ["must contain at least one letter (a-z)"]
    );
    assert_eq!(
        is_valid_port_name("a--b-"),
        [
            "must not contain consecutive hyphens",
            "must not begin or end with a hyphen"
        ]
    );
}

#[test]
fn go_rendering() {
    assert_eq!(go_quote("a\"b"), "\"a\\\"b\"");
    assert_eq!(
        go_string_slice(&["1.1.1.1".to_string()]),
        "[]string{\"1.1.1.1\"}"
    );
    assert_eq!(go_string_slice(&[]), "[]string(nil)");
}
