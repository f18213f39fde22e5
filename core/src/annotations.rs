//! Every annotation key frontdesk itself reads, and typed parsing of annotation values.
//!
//! Providers receive the Service's annotations in `LoadBalancerSpec::annotations` and parse
//! their own keys with the helpers here, so every bad value produces the same kind of message:
//! which annotation, what was found, and what is expected instead.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use crate::naming::{APPLIED_FINGERPRINT, RECORD_ANNOTATION};

/// The node label lives with the node predicates; re-exported so all keys are reachable here.
pub use crate::nodes::EXCLUDE_BALANCER_LABEL;

/// Written by `kubectl apply`: a full copy of the manifest, never meaningful to a load balancer.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Legacy source-range annotation, honoured when `spec.loadBalancerSourceRanges` is empty
/// (upstream behaviour on every cloud). Comma-separated CIDRs.
pub const SOURCE_RANGES: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// `"true"` asks for a load balancer reachable only inside the network (private address).
pub const INTERNAL: &str = "frontdesk.dev/internal";

/// Comma-separated addresses to request, at most one per IP family; replaces the deprecated
/// `spec.loadBalancerIP`, which cannot express dual-stack.
pub const LOAD_BALANCER_IPS: &str = "frontdesk.dev/load-balancer-ips";

/// Annotations that are bookkeeping of a client or of frontdesk itself. They never describe the
/// load balancer, so they are neither handed to providers nor allowed to trigger cloud work
/// (writing the record must not re-trigger the reconcile that wrote it).
pub const BOOKKEEPING: &[&str] = &[LAST_APPLIED, RECORD_ANNOTATION, APPLIED_FINGERPRINT];

/// Annotation domains (the part before `/`, including subdomains) that frontdesk or one of
/// its providers reads. Only annotations under these take part in the change fingerprint, so
/// external-dns, Argo CD, Helm or kubectl bookkeeping never cause cloud calls.
pub const HONOURED_DOMAINS: &[&str] = &[
    "frontdesk.dev",
    "service.beta.kubernetes.io",
    "service.kubernetes.io",
    "networking.gke.io",
    "cloud.google.com",
    "metallb.universe.tf",
    "metallb.io",
];

/// All annotations of the Service minus [`BOOKKEEPING`]: what providers see.
pub fn lb_relevant_annotations(svc: &Service) -> BTreeMap<String, String> {
    svc.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !BOOKKEEPING.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// True when a change of this annotation may change the load balancer: its domain is one of
/// [`HONOURED_DOMAINS`] (or a subdomain of one) and it is not bookkeeping.
pub fn is_honoured_key(key: &str) -> bool {
    if BOOKKEEPING.contains(&key) {
        return false;
    }
    let Some((domain, _)) = key.split_once('/') else {
        // Unprefixed keys belong to the user, not to any controller.
        return false;
    };
    HONOURED_DOMAINS
        .iter()
        .any(|d| domain == *d || domain.strip_suffix(d).is_some_and(|p| p.ends_with('.')))
}

/// A bad annotation value: names the annotation, the value and the expected form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: {value:?} is not valid; {expected}")]
pub struct AnnotationError {
    pub key: String,
    pub value: String,
    /// What to write instead, phrased as advice to the user.
    pub expected: String,
}

impl AnnotationError {
    pub fn new(key: &str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    /// The field path in Kubernetes' notation, for conditions and `SpecError`.
    pub fn field(&self) -> String {
        annotation_field(&self.key)
    }
}

/// `metadata.annotations[<key>]`: how Kubernetes names an annotation in field paths.
pub fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

/// Go's `strconv.ParseBool`, exactly: Kubernetes labels and most upstream annotations are parsed
/// with it, and Rust's `bool::from_str` accepts a different set (only `true`/`false`).
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A boolean annotation value (Go `ParseBool` forms, surrounding blanks ignored).
pub fn bool_value(key: &str, value: &str) -> Result<bool, AnnotationError> {
    parse_go_bool(value.trim())
        .ok_or_else(|| AnnotationError::new(key, value, "use \"true\" or \"false\""))
}

/// Comma-separated items, blanks trimmed, empty items dropped.
pub fn list_value(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses one CIDR. Host bits are cleared (Go's `net.ParseCIDR` returns the network too), and a
/// bare address is refused because upstream refuses it.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().map(|n| n.trunc())
}

/// Comma-separated CIDRs such as `10.0.0.0/8, 2001:db8::/32`.
pub fn cidr_list_value(key: &str, value: &str) -> Result<Vec<IpNet>, AnnotationError> {
    list_value(value)
        .iter()
        .map(|item| {
            parse_cidr(item).ok_or_else(|| {
                AnnotationError::new(
                    key,
                    value,
                    format!("{item:?} is not a CIDR; use comma-separated CIDRs like 10.0.0.0/8,2001:db8::/32"),
                )
            })
        })
        .collect()
}

/// Comma-separated IP addresses such as `192.0.2.10,2001:db8::10`.
pub fn ip_list_value(key: &str, value: &str) -> Result<Vec<IpAddr>, AnnotationError> {
    list_value(value)
        .iter()
        .map(|item| {
            item.parse::<IpAddr>().map_err(|_| {
                AnnotationError::new(
                    key,
                    value,
                    format!("{item:?} is not an IP address; use comma-separated addresses like 192.0.2.10,2001:db8::10"),
                )
            })
        })
        .collect()
}

/// Comma-separated `key=value` pairs (tags, target-group attributes, node selectors).
/// A key may appear once; an empty value (`k=`) is allowed, a missing `=` or key is not.
pub fn key_value_list_value(
    key: &str,
    value: &str,
) -> Result<BTreeMap<String, String>, AnnotationError> {
    let mut out = BTreeMap::new();
    for item in list_value(value) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(AnnotationError::new(
                key,
                value,
                format!("{item:?} has no '='; use comma-separated key=value pairs"),
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(AnnotationError::new(
                key,
                value,
                format!("{item:?} has an empty key; use comma-separated key=value pairs"),
            ));
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(AnnotationError::new(
                key,
                value,
                format!("key {k:?} appears twice; give each key once"),
            ));
        }
    }
    Ok(out)
}

/// A decimal integer within `min..=max` (timeouts, intervals, thresholds).
pub fn int_value(key: &str, value: &str, min: i64, max: i64) -> Result<i64, AnnotationError> {
    let expected = || format!("use a whole number from {min} to {max}");
    let n = value
        .trim()
        .parse::<i64>()
        .map_err(|_| AnnotationError::new(key, value, expected()))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(AnnotationError::new(key, value, expected()))
    }
}

/// Looks `key` up and parses it with `parse`; absent is `Ok(None)`.
pub fn get_parsed<T>(
    annotations: &BTreeMap<String, String>,
    key: &str,
    parse: impl FnOnce(&str, &str) -> Result<T, AnnotationError>,
) -> Result<Option<T>, AnnotationError> {
    annotations.get(key).map(|v| parse(key, v)).transpose()
}

/// `get_parsed` with [`bool_value`].
pub fn get_bool(
    annotations: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<bool>, AnnotationError> {
    get_parsed(annotations, key, bool_value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use rand::Rng;

    #[test]
    fn go_bool_matches_strconv_parse_bool() {
        let cases: &[(&str, Option<bool>)] = &[
            ("1", Some(true)),
            ("t", Some(true)),
            ("T", Some(true)),
            ("TRUE", Some(true)),
            ("true", Some(true)),
            ("True", Some(true)),
            ("0", Some(false)),
            ("f", Some(false)),
            ("F", Some(false)),
            ("FALSE", Some(false)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("", None),
            ("yes", None),
            ("on", None),
            ("tRUE", None),
            (" true", None),
            ("2", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_bool(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn bool_annotation_trims_and_names_key_on_error() {
        assert_eq!(bool_value(INTERNAL, " true "), Ok(true));
        assert_eq!(bool_value(INTERNAL, "False"), Ok(false));
        let err = bool_value(INTERNAL, "yes").unwrap_err();
        assert_eq!(err.field(), "metadata.annotations[frontdesk.dev/internal]");
        let msg = err.to_string();
        assert!(
            msg.contains(INTERNAL) && msg.contains("\"yes\"") && msg.contains("\"true\""),
            "{msg}"
        );
    }

    #[test]
    fn cidr_lists() {
        let ok: &[(&str, &[&str])] = &[
            ("", &[]),
            (" , ", &[]),
            ("10.0.0.0/8", &["10.0.0.0/8"]),
            ("10.1.2.3/8", &["10.0.0.0/8"]),
            (
                "10.0.0.0/8, 192.168.0.0/16,2001:db8::/32",
                &["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"],
            ),
            ("0.0.0.0/0", &["0.0.0.0/0"]),
        ];
        for (input, want) in ok {
            let got: Vec<String> = cidr_list_value(SOURCE_RANGES, input)
                .unwrap()
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(got, *want, "input {input:?}");
        }
        for bad in [
            "10.0.0.1",
            "10.0.0.0/33",
            "example.com/8",
            "10.0.0.0/8;10.1.0.0/16",
            "::/129",
        ] {
            let err = cidr_list_value(SOURCE_RANGES, bad).unwrap_err();
            assert!(err.expected.contains("CIDR"), "{bad}: {err}");
            assert_eq!(err.key, SOURCE_RANGES);
        }
    }

    #[test]
    fn ip_lists() {
        let got = ip_list_value(LOAD_BALANCER_IPS, "192.0.2.10, 2001:db8::10").unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ipv4() && got[1].is_ipv6());
        for bad in ["192.0.2.300", "192.0.2.0/24", "host", "192.0.2.1 192.0.2.2"] {
            assert!(ip_list_value(LOAD_BALANCER_IPS, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_value_lists() {
        let got = key_value_list_value("k", "a=1, b = two ,c=").unwrap();
        assert_eq!(got.get("a").map(String::as_str), Some("1"));
        assert_eq!(got.get("b").map(String::as_str), Some("two"));
        assert_eq!(got.get("c").map(String::as_str), Some(""));
        assert_eq!(
            key_value_list_value("k", "x=a=b")
                .unwrap()
                .get("x")
                .map(String::as_str),
            Some("a=b")
        );
        for bad in ["a", "=1", "a=1,a=2", "a=1,b"] {
            assert!(key_value_list_value("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ints() {
        let cases: &[(&str, Option<i64>)] = &[
            ("4", Some(4)),
            (" 100 ", Some(100)),
            ("3", None),
            ("101", None),
            ("4m", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(int_value("k", input, 4, 100).ok(), *want, "input {input:?}");
        }
        assert!(int_value("k", "7", 4, 100).is_ok());
        assert!(
            int_value("k", "x", 4, 100)
                .unwrap_err()
                .expected
                .contains("4 to 100")
        );
    }

    #[test]
    fn get_helpers() {
        let mut m = BTreeMap::new();
        assert_eq!(get_bool(&m, INTERNAL), Ok(None));
        m.insert(INTERNAL.to_owned(), "1".to_owned());
        assert_eq!(get_bool(&m, INTERNAL), Ok(Some(true)));
        m.insert(INTERNAL.to_owned(), "nope".to_owned());
        assert!(get_bool(&m, INTERNAL).is_err());
    }

    #[test]
    fn relevant_annotations_drop_bookkeeping() {
        let svc = Service {
            metadata: ObjectMeta {
                annotations: Some(
                    [
                        (LAST_APPLIED, "{}"),
                        (RECORD_ANNOTATION, "{}"),
                        (APPLIED_FINGERPRINT, "00ff"),
                        (INTERNAL, "true"),
                        ("external-dns.alpha.kubernetes.io/hostname", "x.example.com"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let got: Vec<String> = lb_relevant_annotations(&svc).into_keys().collect();
        assert_eq!(
            got,
            vec![
                "external-dns.alpha.kubernetes.io/hostname".to_owned(),
                INTERNAL.to_owned()
            ]
        );
        assert!(lb_relevant_annotations(&Service::default()).is_empty());
    }

    #[test]
    fn honoured_keys() {
        let cases: &[(&str, bool)] = &[
            (INTERNAL, true),
            (LOAD_BALANCER_IPS, true),
            ("mock.frontdesk.dev/latency", true),
            (SOURCE_RANGES, true),
            ("service.beta.kubernetes.io/aws-load-balancer-type", true),
            ("service.kubernetes.io/topology-mode", true),
            ("networking.gke.io/load-balancer-type", true),
            ("cloud.google.com/load-balancer-type", true),
            ("metallb.universe.tf/address-pool", true),
            ("metallb.io/ip-allocated-from-pool", true),
            ("notfrontdesk.dev/x", false),
            ("frontdesk.dev.evil.com/x", false),
            (LAST_APPLIED, false),
            (RECORD_ANNOTATION, false),
            (APPLIED_FINGERPRINT, false),
            ("external-dns.alpha.kubernetes.io/hostname", false),
            ("argocd.argoproj.io/tracking-id", false),
            ("meta.helm.sh/release-name", false),
            ("description", false),
            ("", false),
        ];
        for (key, want) in cases {
            assert_eq!(is_honoured_key(key), *want, "key {key:?}");
        }
    }

    /// Fuzz-style: no parser panics on arbitrary input, and errors always name the key.
    #[test]
    fn parsers_never_panic_on_random_input() {
        const ALPHABET: &[char] = &[
            '0', '1', '9', 'a', 'f', 't', 'T', 'x', ':', '.', '/', ',', '=', ' ', '-', '%', '[',
            ']', '\t', '\n', 'é', '€', '😀', '\u{0}',
        ];
        let mut rng = rand::rng();
        for _ in 0..3000 {
            let len = rng.random_range(0..40);
            let s: String = (0..len)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect();
            let _ = parse_go_bool(&s);
            let _ = list_value(&s);
            let _ = parse_cidr(&s);
            let _ = is_honoured_key(&s);
            for err in [
                bool_value("k", &s).err(),
                cidr_list_value("k", &s).err(),
                ip_list_value("k", &s).err(),
                key_value_list_value("k", &s).err(),
                int_value("k", &s, -5, 5).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(err.key, "k");
                assert!(!err.to_string().is_empty());
            }
        }
    }
}
