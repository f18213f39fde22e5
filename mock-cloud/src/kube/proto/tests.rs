use serde_json::json;

use super::*;

/// A protobuf field for the test encoder.
enum P {
    V(u32, u64),
    L(u32, Vec<u8>),
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn enc(fields: &[P]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        match f {
            P::V(n, v) => {
                varint(u64::from(*n) << 3, &mut out);
                varint(*v, &mut out);
            }
            P::L(n, b) => {
                varint(u64::from(*n) << 3 | 2, &mut out);
                varint(b.len() as u64, &mut out);
                out.extend_from_slice(b);
            }
        }
    }
    out
}

fn st(n: u32, s: &str) -> P {
    P::L(n, s.as_bytes().to_vec())
}
fn sub(n: u32, fields: &[P]) -> P {
    P::L(n, enc(fields))
}
fn entry(n: u32, k: &str, v: P) -> P {
    sub(n, &[st(1, k), v])
}

fn body(api_version: &str, kind: &str, raw: &[P]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(enc(&[
        sub(1, &[st(1, api_version), st(2, kind)]),
        P::L(2, enc(raw)),
        st(3, ""),
        st(4, ""),
    ]));
    out
}

/// ObjectMeta as gogo-protobuf writes it: every non-pointer string, even empty ones.
fn meta(name: &str, labels: &[(&str, &str)]) -> P {
    let mut f = vec![st(1, name), st(2, ""), st(3, ""), st(6, ""), P::V(7, 0)];
    f.push(sub(8, &[]));
    for (k, v) in labels {
        f.push(entry(11, k, st(2, v)));
    }
    sub(1, &f)
}

#[test]
fn decodes_the_generator_kinds() {
    let int_or_str = |i: u64| sub(4, &[P::V(1, 0), P::V(2, i), st(3, "")]);
    let cases: Vec<(Vec<u8>, Value)> = vec![
        (
            body(
                "v1",
                "Namespace",
                &[meta("foo", &[]), sub(2, &[]), sub(3, &[st(1, "")])],
            ),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"},
                   "spec": {}, "status": {}}),
        ),
        (
            body(
                "v1",
                "ConfigMap",
                &[
                    meta("x", &[]),
                    entry(2, "a", st(2, "b")),
                    entry(2, "empty", st(2, "")),
                    entry(3, "bin", P::L(2, vec![0xff, 0x00])),
                ],
            ),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                   "data": {"a": "b", "empty": ""}, "binaryData": {"bin": "/wA="}}),
        ),
        (
            body(
                "v1",
                "Secret",
                &[
                    meta("s", &[]),
                    entry(2, "k", P::L(2, b"v".to_vec())),
                    st(3, "Opaque"),
                ],
            ),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"k": "dg=="}, "type": "Opaque"}),
        ),
        (
            body(
                "apps/v1",
                "Deployment",
                &[
                    meta("web", &[("app", "web")]),
                    sub(
                        2,
                        &[
                            P::V(1, 0),
                            sub(2, &[entry(1, "app", st(2, "web"))]),
                            sub(
                                3,
                                &[
                                    meta("", &[("app", "web")]),
                                    sub(
                                        2,
                                        &[sub(
                                            2,
                                            &[
                                                st(1, "nginx"),
                                                st(2, "nginx"),
                                                st(3, "sleep"),
                                                st(3, "10"),
                                                sub(6, &[P::V(3, 80), st(4, "TCP")]),
                                                sub(7, &[st(1, "A"), st(2, "1")]),
                                                sub(
                                                    8,
                                                    &[entry(1, "cpu", sub(2, &[st(1, "100m")]))],
                                                ),
                                            ],
                                        )],
                                    ),
                                ],
                            ),
                            sub(4, &[]),
                            // A negative int32 travels as a 10-byte varint.
                            P::V(5, u64::MAX),
                        ],
                    ),
                    sub(3, &[]),
                ],
            ),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "labels": {"app": "web"}},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{
                                             "name": "nginx", "image": "nginx",
                                             "command": ["sleep", "10"],
                                             "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                             "env": [{"name": "A", "value": "1"}],
                                             "resources": {"limits": {"cpu": "100m"}}}]}},
                            "strategy": {}, "minReadySeconds": -1},
                   "status": {}}),
        ),
        (
            body(
                "v1",
                "Service",
                &[
                    meta("x", &[("app", "x")]),
                    sub(
                        2,
                        &[
                            sub(
                                1,
                                &[
                                    st(1, "80-8080"),
                                    st(2, "TCP"),
                                    P::V(3, 80),
                                    int_or_str(8080),
                                    P::V(5, 0),
                                ],
                            ),
                            sub(
                                1,
                                &[
                                    st(1, "http"),
                                    P::V(3, 81),
                                    sub(4, &[P::V(1, 1), P::V(2, 0), st(3, "web")]),
                                    P::V(5, 30080),
                                ],
                            ),
                            entry(2, "app", st(2, "x")),
                            st(3, ""),
                            st(4, "LoadBalancer"),
                            st(7, ""),
                        ],
                    ),
                    sub(3, &[sub(1, &[])]),
                ],
            ),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "x", "labels": {"app": "x"}},
                   "spec": {"ports": [
                                {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                                {"name": "http", "port": 81, "targetPort": "web", "nodePort": 30080}],
                            "selector": {"app": "x"}, "type": "LoadBalancer"},
                   "status": {}}),
        ),
        (
            body(
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                &[
                    meta("", &[]),
                    sub(
                        2,
                        &[sub(
                            1,
                            &[st(1, "default"), st(2, "create"), st(3, ""), st(5, "pods")],
                        )],
                    ),
                ],
            ),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                   "metadata": {}, "spec": {"resourceAttributes": {
                       "namespace": "default", "verb": "create", "resource": "pods"}}}),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode(&bytes).unwrap(), want);
    }
}

#[test]
fn rejects_what_it_cannot_decode() {
    let unsupported = body("policy/v1", "PodDisruptionBudget", &[meta("p", &[])]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"kind\":\"ConfigMap\"}".to_vec(), "does not start with"),
        (MAGIC.to_vec(), "Object 'Kind' is missing"),
        (unsupported, "kind PodDisruptionBudget (policy/v1)"),
        (
            body("v1", "ConfigMap", &[P::V(1, 5)]),
            "field 1 (metadata) arrived as varint",
        ),
        (
            body("v1", "ConfigMap", &[sub(1, &[P::L(1, vec![0xc3, 0x28])])]),
            "not valid UTF-8",
        ),
        (
            {
                let mut b = body("v1", "ConfigMap", &[meta("x", &[])]);
                // Past the two empty trailing fields, into the raw object.
                b.truncate(b.len() - 5);
                b
            },
            "runs past the end",
        ),
    ];
    for (bytes, want) in cases {
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
    let err = decode(&body("policy/v1", "PodDisruptionBudget", &[])).unwrap_err();
    assert!(matches!(err, ProtoError::UnsupportedKind { .. }));
    assert!(err.to_string().contains("kubectl apply -f"));
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_and_mutated_bodies_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = body(
        "apps/v1",
        "Deployment",
        &[
            meta("web", &[("app", "web")]),
            sub(
                2,
                &[P::V(1, 3), sub(3, &[sub(2, &[sub(2, &[st(1, "c")])])])],
            ),
        ],
    );
    let mut decoded = 0;
    for round in 0..20_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            // Random bytes behind the magic, so the envelope parser is exercised.
            let len = (rng.next() % 64) as usize;
            let mut b = MAGIC.to_vec();
            b.extend((0..len).map(|_| rng.next() as u8));
            b
        } else {
            let mut b = valid.clone();
            for _ in 0..=(rng.next() % 4) {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            b.truncate(b.len() - (rng.next() % 3) as usize);
            b
        };
        if decode(&bytes).is_ok() {
            decoded += 1;
        }
    }
    // Some mutations stay decodable (they hit string contents); most do not.
    assert!(decoded > 0 && decoded < 20_000, "decoded {decoded}");
}
