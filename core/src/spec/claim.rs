//! Which Services this controller handles, and when one needs its load balancer removed.

use k8s_openapi::api::core::v1::Service;

use crate::naming::{FINALIZER, RECORD_ANNOTATION};

/// Which Services this controller claims (all must be `type: LoadBalancer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Claim Services whose `spec.loadBalancerClass` equals this.
    pub class: Option<String>,
    /// Also claim Services with no `loadBalancerClass` (upstream's only rule). Turn off when
    /// another controller, e.g. the cloud's own, handles the unclassed ones.
    pub claim_unclassed: bool,
}

impl Default for ClaimPolicy {
    /// Upstream behaviour: unclassed Services only.
    fn default() -> Self {
        Self {
            class: None,
            claim_unclassed: true,
        }
    }
}

impl ClaimPolicy {
    /// `type: LoadBalancer` and the class rule above.
    pub fn claims(&self, svc: &Service) -> bool {
        is_load_balancer(svc)
            && match class_of(svc) {
                None => self.claim_unclassed,
                Some(c) => self.class.as_deref() == Some(c),
            }
    }

    /// Whether the load balancer must be removed and then the finalizer dropped. Our finalizer
    /// is present and one of:
    /// - the type is no longer LoadBalancer (upstream's rule; the API server has already
    ///   cleared the class, so ownership cannot be told apart — deletion works from our
    ///   record, and without one there is nothing of ours to delete);
    /// - the Service is being deleted and is ours (claimed, or carries our record);
    /// - it is still a LoadBalancer but no longer claimed (this controller was reconfigured)
    ///   and carries our record.
    ///
    /// A foreign-class Service without our record is never touched: the finalizer name is
    /// upstream's, so it may belong to another controller.
    pub fn needs_cleanup(&self, svc: &Service) -> bool {
        if !has_finalizer(svc) {
            return false;
        }
        if !is_load_balancer(svc) {
            return true;
        }
        let claimed = self.claims(svc);
        let deleting = svc.metadata.deletion_timestamp.is_some();
        (deleting && (claimed || has_record(svc))) || (!claimed && has_record(svc))
    }
}

/// The claim rule for `class`: type LoadBalancer, and `loadBalancerClass` unset or equal to
/// `class`. Same as `ClaimPolicy { class, claim_unclassed: true }.claims(svc)`.
pub fn wants_load_balancer(svc: &Service, class: Option<&str>) -> bool {
    ClaimPolicy {
        class: class.map(str::to_owned),
        claim_unclassed: true,
    }
    .claims(svc)
}

/// Upstream `needsCleanup`: our finalizer is present and the Service is being deleted or is no
/// longer `type: LoadBalancer`. Use [`ClaimPolicy::needs_cleanup`] when the controller claims
/// by class; it also covers a Service that left the claim.
pub fn needs_cleanup(svc: &Service) -> bool {
    has_finalizer(svc) && (svc.metadata.deletion_timestamp.is_some() || !is_load_balancer(svc))
}

pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

pub fn has_finalizer(svc: &Service) -> bool {
    svc.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

fn has_record(svc: &Service) -> bool {
    svc.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(RECORD_ANNOTATION))
}

/// An empty class is invalid in the API; treating it as unset is the forgiving reading.
fn class_of(svc: &Service) -> Option<&str> {
    svc.spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spec::fixtures::{service, with_spec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const OURS: &str = "frontdesk.dev/lb";

    fn svc(
        type_: &str,
        class: Option<&str>,
        finalizer: bool,
        deleting: bool,
        record: bool,
    ) -> Service {
        let mut s = with_spec(|spec| {
            spec.type_ = Some(type_.to_owned());
            spec.load_balancer_class = class.map(str::to_owned);
        });
        if finalizer {
            s.metadata.finalizers = Some(vec!["other.io/x".into(), FINALIZER.into()]);
        }
        if deleting {
            s.metadata.deletion_timestamp = Some(Time(Default::default()));
        }
        if record {
            s.metadata.annotations = Some(
                [(RECORD_ANNOTATION.to_owned(), "{}".to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
        s
    }

    #[test]
    fn claim_rules() {
        let unclassed_and_ours = ClaimPolicy {
            class: Some(OURS.into()),
            claim_unclassed: true,
        };
        let only_ours = ClaimPolicy {
            class: Some(OURS.into()),
            claim_unclassed: false,
        };
        let upstream = ClaimPolicy::default();
        // (type, class, [upstream, unclassed_and_ours, only_ours])
        let cases: &[(&str, Option<&str>, [bool; 3])] = &[
            ("LoadBalancer", None, [true, true, false]),
            ("LoadBalancer", Some(""), [true, true, false]),
            ("LoadBalancer", Some(OURS), [false, true, true]),
            (
                "LoadBalancer",
                Some("example.com/other"),
                [false, false, false],
            ),
            ("ClusterIP", None, [false, false, false]),
            ("NodePort", Some(OURS), [false, false, false]),
            ("ExternalName", None, [false, false, false]),
        ];
        for (type_, class, want) in cases {
            let s = svc(type_, *class, false, false, false);
            let got = [
                upstream.claims(&s),
                unclassed_and_ours.claims(&s),
                only_ours.claims(&s),
            ];
            assert_eq!(got, *want, "type {type_} class {class:?}");
            assert_eq!(wants_load_balancer(&s, Some(OURS)), want[1]);
            assert_eq!(wants_load_balancer(&s, None), want[0]);
        }
        let mut no_spec = service();
        no_spec.spec = None;
        assert!(!upstream.claims(&no_spec));
    }

    #[test]
    fn cleanup_rules() {
        let policy = ClaimPolicy {
            class: Some(OURS.into()),
            claim_unclassed: false,
        };
        let other = Some("example.com/other");
        // (name, service, upstream needs_cleanup, policy needs_cleanup)
        let cases: Vec<(&str, Service, bool, bool)> = vec![
            (
                "no finalizer, deleting",
                svc("LoadBalancer", Some(OURS), false, true, true),
                false,
                false,
            ),
            (
                "ours, live",
                svc("LoadBalancer", Some(OURS), true, false, true),
                false,
                false,
            ),
            (
                "ours, deleting",
                svc("LoadBalancer", Some(OURS), true, true, false),
                true,
                true,
            ),
            (
                "type changed",
                svc("ClusterIP", None, true, false, false),
                true,
                true,
            ),
            (
                "type changed, deleting",
                svc("NodePort", None, true, true, true),
                true,
                true,
            ),
            (
                "foreign class deleting, no record",
                svc("LoadBalancer", other, true, true, false),
                true,
                false,
            ),
            (
                "foreign class deleting, our record",
                svc("LoadBalancer", other, true, true, true),
                true,
                true,
            ),
            (
                "left claim, our record",
                svc("LoadBalancer", None, true, false, true),
                false,
                true,
            ),
            (
                "unclaimed, no record",
                svc("LoadBalancer", None, true, false, false),
                false,
                false,
            ),
        ];
        for (name, s, want_upstream, want_policy) in cases {
            assert_eq!(needs_cleanup(&s), want_upstream, "upstream: {name}");
            assert_eq!(policy.needs_cleanup(&s), want_policy, "policy: {name}");
        }
    }
}
