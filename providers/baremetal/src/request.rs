//! What a Service asks of the allocator, parsed from its annotations and fields (pure).
//!
//! Frontdesk's own `frontdesk.dev/*` keys are the documented ones; MetalLB's `metallb.io/*` are
//! accepted so users can migrate unchanged, and the legacy `metallb.universe.tf/*` keys work
//! with a warning (the provider turns warnings into `DeprecatedAnnotation` Events).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::crd::LabelSelector;
use frontdesk_core::provider::{IpFamily, Protocol};

pub const FD_POOL: &str = "frontdesk.dev/address-pool";
pub const FD_SHARED: &str = "frontdesk.dev/allow-shared-ip";
pub const MLB_IPS: &str = "metallb.io/loadBalancerIPs";
pub const MLB_POOL: &str = "metallb.io/address-pool";
pub const MLB_SHARED: &str = "metallb.io/allow-shared-ip";
pub const LEGACY_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
pub const LEGACY_POOL: &str = "metallb.universe.tf/address-pool";
pub const LEGACY_SHARED: &str = "metallb.universe.tf/allow-shared-ip";

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl FamilyPolicy {
    pub fn parse(s: Option<&str>) -> FamilyPolicy {
        match s {
            Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
            Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
            _ => FamilyPolicy::SingleStack,
        }
    }
}

/// Everything the allocator needs to know about one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRequest {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub namespace_labels: BTreeMap<String, String>,
    /// `spec.ipFamilies` in order (the first is primary).
    pub families: Vec<IpFamily>,
    pub policy: FamilyPolicy,
    /// Exact addresses asked for (at most one per family).
    pub requested_ips: Vec<IpAddr>,
    pub pool: Option<String>,
    pub sharing_key: Option<String>,
    pub ports: Vec<(Protocol, u16)>,
    /// Empty for `externalTrafficPolicy: Cluster`, the selector for `Local` (MetalLB's rule:
    /// Local Services share only when they select exactly the same pods).
    pub backend_key: String,
}

impl ServiceRequest {
    /// The families this Service should get an address of, primary first.
    pub fn wanted_families(&self) -> Vec<IpFamily> {
        let mut f = self.families.clone();
        if f.is_empty() {
            f.push(IpFamily::IPv4);
        }
        if self.policy == FamilyPolicy::SingleStack {
            f.truncate(1);
        }
        f
    }
}

/// Annotation-derived part of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnotationRequest {
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
    pub sharing_key: Option<String>,
    /// Human-readable deprecation warnings.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error(
        "annotation {key}: {value:?} is not a comma-separated list of IP addresses; use e.g. 192.0.2.10,2001:db8::10"
    )]
    BadIps { key: String, value: String },
    #[error(
        "annotations {a} and {b} disagree ({va:?} vs {vb:?}); keep one of them (frontdesk.dev/* is preferred)"
    )]
    Disagree {
        a: String,
        va: String,
        b: String,
        vb: String,
    },
    #[error("annotation {key} is empty; remove it or name a value")]
    Empty { key: String },
}

/// Reads one setting that may come under several keys (preferred first). Keys that agree are
/// fine; a legacy key adds a warning.
fn one_of(
    annotations: &BTreeMap<String, String>,
    keys: &[&str],
    legacy: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<(String, String)>, RequestError> {
    let mut found: Option<(String, String)> = None;
    for key in keys {
        let Some(v) = annotations.get(*key) else {
            continue;
        };
        let v = v.trim().to_string();
        if v.is_empty() {
            return Err(RequestError::Empty {
                key: key.to_string(),
            });
        }
        if *key == legacy {
            let current = legacy.replace("metallb.universe.tf/", "metallb.io/");
            warnings.push(format!(
                "annotation {legacy} is deprecated; rename it to {current} (or frontdesk.dev/...)"
            ));
        }
        match &found {
            Some((k, prev)) if *prev != v => {
                return Err(RequestError::Disagree {
                    a: k.clone(),
                    va: prev.clone(),
                    b: key.to_string(),
                    vb: v,
                });
            }
            Some(_) => {}
            None => found = Some((key.to_string(), v)),
        }
    }
    Ok(found)
}

/// Parse the pool, sharing and MetalLB address annotations. (`frontdesk.dev/load-balancer-ips`
/// and `spec.loadBalancerIP` are parsed by the core into `LoadBalancerSpec::requested_ips`.)
pub fn parse_annotations(
    annotations: &BTreeMap<String, String>,
) -> Result<AnnotationRequest, RequestError> {
    let mut warnings = Vec::new();
    let pool = one_of(
        annotations,
        &[FD_POOL, MLB_POOL, LEGACY_POOL],
        LEGACY_POOL,
        &mut warnings,
    )?
    .map(|(_, v)| v);
    let sharing_key = one_of(
        annotations,
        &[FD_SHARED, MLB_SHARED, LEGACY_SHARED],
        LEGACY_SHARED,
        &mut warnings,
    )?
    .map(|(_, v)| v);
    let mut ips = Vec::new();
    if let Some((key, v)) = one_of(
        annotations,
        &[MLB_IPS, LEGACY_IPS],
        LEGACY_IPS,
        &mut warnings,
    )? {
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let ip: IpAddr = part.parse().map_err(|_| RequestError::BadIps {
                key: key.clone(),
                value: v.clone(),
            })?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    Ok(AnnotationRequest {
        ips,
        pool,
        sharing_key,
        warnings,
    })
}

/// Kubernetes label-selector semantics (matchLabels AND matchExpressions); an empty selector
/// matches everything.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().all(|e| {
        let values = &e.values;
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crd::SelectorRequirement;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotation_table() {
        type Check = fn(&Result<AnnotationRequest, RequestError>) -> bool;
        type Case = (&'static str, &'static [(&'static str, &'static str)], Check);
        let cases: &[Case] = &[
            ("nothing", &[], |r| {
                *r.as_ref().unwrap() == AnnotationRequest::default()
            }),
            (
                "metallb ips dual",
                &[(MLB_IPS, "192.0.2.1, 2001:db8::1")],
                |r| {
                    let r = r.as_ref().unwrap();
                    r.ips.len() == 2 && r.warnings.is_empty()
                },
            ),
            ("legacy ips warn", &[(LEGACY_IPS, "192.0.2.1")], |r| {
                let r = r.as_ref().unwrap();
                r.ips.len() == 1 && r.warnings[0].contains("metallb.io/loadBalancerIPs")
            }),
            ("bad ips", &[(MLB_IPS, "192.0.2.1,x")], |r| {
                matches!(r, Err(RequestError::BadIps { .. }))
            }),
            ("pool fd", &[(FD_POOL, "gold")], |r| {
                r.as_ref().unwrap().pool.as_deref() == Some("gold")
            }),
            (
                "pool metallb agrees",
                &[(FD_POOL, "gold"), (MLB_POOL, "gold")],
                |r| r.as_ref().unwrap().pool.as_deref() == Some("gold"),
            ),
            (
                "pool disagree",
                &[(FD_POOL, "gold"), (MLB_POOL, "silver")],
                |r| matches!(r, Err(RequestError::Disagree { .. })),
            ),
            ("legacy pool", &[(LEGACY_POOL, "p")], |r| {
                let r = r.as_ref().unwrap();
                r.pool.as_deref() == Some("p") && r.warnings.len() == 1
            }),
            ("sharing metallb", &[(MLB_SHARED, "k1")], |r| {
                r.as_ref().unwrap().sharing_key.as_deref() == Some("k1")
            }),
            ("legacy sharing", &[(LEGACY_SHARED, "k1")], |r| {
                r.as_ref().unwrap().warnings.len() == 1
            }),
            ("empty pool", &[(MLB_POOL, " ")], |r| {
                matches!(r, Err(RequestError::Empty { .. }))
            }),
        ];
        for (name, pairs, check) in cases {
            let got = parse_annotations(&ann(pairs));
            assert!(check(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn selectors() {
        let labels = ann(&[("team", "a"), ("tier", "web")]);
        let sel = |ml: &[(&str, &str)], ex: Vec<(&str, &str, &[&str])>| LabelSelector {
            match_labels: ann(ml),
            match_expressions: ex
                .into_iter()
                .map(|(k, op, vs)| SelectorRequirement {
                    key: k.into(),
                    operator: op.into(),
                    values: vs.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        };
        assert!(selector_matches(&sel(&[], vec![]), &labels));
        assert!(selector_matches(&sel(&[("team", "a")], vec![]), &labels));
        assert!(!selector_matches(&sel(&[("team", "b")], vec![]), &labels));
        assert!(selector_matches(
            &sel(&[], vec![("tier", "In", &["web", "db"])]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(&[], vec![("tier", "NotIn", &["web"])]),
            &labels
        ));
        assert!(selector_matches(
            &sel(&[], vec![("x", "DoesNotExist", &[])]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(&[], vec![("x", "Exists", &[])]),
            &labels
        ));
    }
}
