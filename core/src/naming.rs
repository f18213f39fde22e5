//! Deterministic cloud names, ownership tags and the provisioning record.
//!
//! Names derive from the Service UID only, so a crash between "create" and "record" is
//! recovered by looking the name up again, never by creating a duplicate. Tags let the orphan
//! sweep find everything this cluster owns even when a Service (and its record) is gone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use serde::{Deserialize, Serialize};

use crate::provider::{ProvisioningRecord, ServiceKey};

/// Upstream's finalizer name, so `kubectl` users and existing tooling recognise it.
pub const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";

/// Annotation holding the encoded [`ProvisioningRecord`].
pub const RECORD_ANNOTATION: &str = "frontdesk.dev/provisioning-record";

/// Annotation where the controller stores the fingerprint (`spec::lb_fingerprint`) of the last
/// successfully applied Service, so an unchanged Service is not re-ensured after a restart.
/// It is bookkeeping: it never takes part in the fingerprint itself (that would never settle).
pub const APPLIED_FINGERPRINT: &str = "frontdesk.dev/applied-fingerprint";

/// Tag keys every cloud resource carries.
pub const TAG_CLUSTER: &str = "frontdesk.dev/cluster";
/// Value `namespace/name`.
pub const TAG_SERVICE: &str = "frontdesk.dev/service";
pub const TAG_SERVICE_UID: &str = "frontdesk.dev/service-uid";

/// The format version written into every encoded record, so a future layout can be told apart
/// instead of being misread.
pub const RECORD_VERSION: u32 = 1;

/// Upstream `DefaultLoadBalancerName`: `"a"` + the UID without dashes, cut to 32 bytes
/// (`a` + 31 hex digits for a real UID). The lower-case letter first is a GCE rule, the 32-byte
/// limit an AWS rule; all three big clouds still name their load balancers this way, so
/// matching it lets users find their load balancer by the name they already know.
pub fn load_balancer_name(uid: &str) -> String {
    let mut name = String::with_capacity(32);
    name.push('a');
    for c in uid.chars().filter(|c| *c != '-') {
        // Cut on a character boundary: UIDs are ASCII, but a malformed one must not panic.
        if name.len() + c.len_utf8() > 32 {
            break;
        }
        name.push(c);
    }
    name
}

/// The tags that mark a cloud resource as owned by this Service in this cluster.
pub fn ownership_tags(cluster: &str, key: &ServiceKey, uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_CLUSTER.to_owned(), cluster.to_owned()),
        (TAG_SERVICE.to_owned(), key.to_string()),
        (TAG_SERVICE_UID.to_owned(), uid.to_owned()),
    ])
}

/// Reads the `namespace/name` value of [`TAG_SERVICE`] back.
pub fn service_key_from_tag(value: &str) -> Option<ServiceKey> {
    let (ns, name) = value.split_once('/')?;
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some(ServiceKey::new(ns, name))
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "annotation {RECORD_ANNOTATION} is not a valid provisioning record (it is written by \
         frontdesk; restore it rather than edit it): {0}"
    )]
    Malformed(#[source] serde_json::Error),
    #[error(
        "annotation {RECORD_ANNOTATION} has format version {0}, newer than this frontdesk \
         understands (version {RECORD_VERSION}); upgrade frontdesk"
    )]
    UnsupportedVersion(u32),
    #[error("annotation {RECORD_ANNOTATION} has an empty {0}")]
    Incomplete(&'static str),
}

/// The on-the-wire layout: the record plus a version, fields in a fixed order.
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    #[serde(flatten)]
    record: ProvisioningRecord,
}

/// Compact JSON. Resources are sorted and deduplicated first, so equal records always encode
/// to equal strings and rewriting an unchanged record is a no-op patch.
pub fn encode_record(r: &ProvisioningRecord) -> String {
    let mut record = r.clone();
    record.resources.sort();
    record.resources.dedup();
    let wire = Wire {
        v: RECORD_VERSION,
        record,
    };
    // Serialising plain strings and vectors cannot fail; fall back to an empty object rather
    // than panic, which decode_record then reports as malformed.
    serde_json::to_string(&wire).unwrap_or_else(|_| String::from("{}"))
}

pub fn decode_record(s: &str) -> Result<ProvisioningRecord, RecordError> {
    let wire: Wire = serde_json::from_str(s).map_err(RecordError::Malformed)?;
    if wire.v != RECORD_VERSION {
        return Err(RecordError::UnsupportedVersion(wire.v));
    }
    let mut record = wire.record;
    for (field, value) in [
        ("provider", &record.provider),
        ("cluster", &record.cluster),
        ("uid", &record.uid),
        ("service.namespace", &record.service.namespace),
        ("service.name", &record.service.name),
    ] {
        if value.is_empty() {
            return Err(RecordError::Incomplete(field));
        }
    }
    record.resources.sort();
    record.resources.dedup();
    Ok(record)
}

/// The record stored on the Service, if any.
pub fn read_record(svc: &Service) -> Result<Option<ProvisioningRecord>, RecordError> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECORD_ANNOTATION))
        .map(|s| decode_record(s))
        .transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::provider::ResourceRef;

    #[test]
    fn load_balancer_names_match_upstream() {
        let cases: &[(&str, &str)] = &[
            // A real UID: "a" + 31 hex digits.
            (
                "6f1a0b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b",
                "a6f1a0b2c3d4e4f508a9b0c1d2e3f4a5",
            ),
            ("abc", "aabc"),
            ("", "a"),
            ("----", "a"),
            (
                "0123456789012345678901234567890123456789",
                "a0123456789012345678901234567890",
            ),
            // Multi-byte input is cut on a character boundary, never panics.
            ("ééééééééééééééééééé", "aééééééééééééééé"),
        ];
        for (uid, want) in cases {
            let got = load_balancer_name(uid);
            assert_eq!(got, *want, "uid {uid:?}");
            assert!(got.len() <= 32);
        }
    }

    #[test]
    fn tags() {
        let key = ServiceKey::new("shop", "web");
        let tags = ownership_tags("prod", &key, "u-1");
        assert_eq!(tags.len(), 3);
        assert_eq!(tags[TAG_CLUSTER], "prod");
        assert_eq!(tags[TAG_SERVICE], "shop/web");
        assert_eq!(tags[TAG_SERVICE_UID], "u-1");
        assert_eq!(service_key_from_tag(&tags[TAG_SERVICE]), Some(key));
        for bad in ["", "shop", "/web", "shop/", "a/b/c"] {
            assert_eq!(service_key_from_tag(bad), None, "{bad:?}");
        }
    }

    fn record(resources: &[(&str, &str)]) -> ProvisioningRecord {
        ProvisioningRecord {
            provider: "mock".into(),
            cluster: "prod".into(),
            service: ServiceKey::new("shop", "web"),
            uid: "u-1".into(),
            resources: resources
                .iter()
                .map(|(k, i)| ResourceRef {
                    kind: (*k).into(),
                    id: (*i).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn record_round_trip_is_stable_and_normalised() {
        let a = record(&[
            ("targetgroup", "tg-1"),
            ("loadbalancer", "lb"),
            ("targetgroup", "tg-1"),
        ]);
        let b = record(&[("loadbalancer", "lb"), ("targetgroup", "tg-1")]);
        let enc = encode_record(&a);
        assert_eq!(enc, encode_record(&b));
        assert_eq!(
            enc,
            r#"{"v":1,"provider":"mock","cluster":"prod","service":{"namespace":"shop","name":"web"},"uid":"u-1","resources":[{"kind":"loadbalancer","id":"lb"},{"kind":"targetgroup","id":"tg-1"}]}"#
        );
        assert_eq!(decode_record(&enc).unwrap(), b);
        assert_eq!(
            decode_record(&encode_record(&record(&[]))).unwrap(),
            record(&[])
        );
    }

    #[test]
    fn record_decode_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "not a valid"),
            ("{", "not a valid"),
            ("[]", "not a valid"),
            (r#"{"provider":"mock"}"#, "not a valid"),
            (
                r#"{"v":2,"provider":"mock","cluster":"c","service":{"namespace":"n","name":"s"},"uid":"u","resources":[]}"#,
                "version 2",
            ),
            (
                r#"{"v":1,"provider":"mock","cluster":"c","service":{"namespace":"n","name":"s"},"uid":"","resources":[]}"#,
                "empty uid",
            ),
        ];
        for (input, want) in cases {
            let err = decode_record(input).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains(RECORD_ANNOTATION),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn read_record_from_service() {
        let mut svc = Service::default();
        assert!(read_record(&svc).unwrap().is_none());
        let r = record(&[("loadbalancer", "lb")]);
        svc.metadata.annotations = Some(BTreeMap::from([(
            RECORD_ANNOTATION.to_owned(),
            encode_record(&r),
        )]));
        assert_eq!(read_record(&svc).unwrap(), Some(r));
        svc.metadata.annotations = Some(BTreeMap::from([(
            RECORD_ANNOTATION.to_owned(),
            "garbage".to_owned(),
        )]));
        assert!(read_record(&svc).is_err());
    }

    /// Fuzz-style: decoding arbitrary annotation text never panics, including mutations of a
    /// valid record (the annotation is user-editable).
    #[test]
    fn decode_never_panics() {
        use rand::Rng;
        let valid = encode_record(&record(&[("loadbalancer", "lb")]));
        let alphabet: Vec<char> = "{}[]\":,0123456789vuidnamespace \\é".chars().collect();
        let mut rng = rand::rng();
        for _ in 0..2000 {
            let mut s: Vec<char> = if rng.random_bool(0.5) {
                valid.chars().collect()
            } else {
                Vec::new()
            };
            for _ in 0..rng.random_range(1..8) {
                let c = alphabet[rng.random_range(0..alphabet.len())];
                if s.is_empty() || rng.random_bool(0.5) {
                    let at = rng.random_range(0..=s.len());
                    s.insert(at, c);
                } else {
                    let at = rng.random_range(0..s.len());
                    s[at] = c;
                }
            }
            let text: String = s.into_iter().collect();
            if let Err(e) = decode_record(&text) {
                assert!(e.to_string().contains(RECORD_ANNOTATION));
            }
        }
    }
}
