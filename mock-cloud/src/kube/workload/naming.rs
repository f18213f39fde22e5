//! Deterministic names and identifiers: the same inputs always give the same pod, slice and
//! container names, so reconciling twice converges instead of creating duplicates.

use serde_json::Value;

/// The alphabet upstream uses for generated names and hashes (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Upstream keeps generated names within 63 characters: a base of at most 58 plus 5 random.
const MAX_GENERATE_BASE: usize = 58;

pub(super) fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub(super) fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `rand.SafeEncodeString`: every byte mapped into the safe alphabet.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// JSON with object keys sorted at every level, so a hash does not depend on key order.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        canonical(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The `pod-template-hash` of a Deployment's pod template, computed the way upstream does
/// (FNV-32a, rendered in decimal, safe-encoded), which is why real hashes only ever use the
/// characters `4-9bcdf`.
pub(super) fn pod_template_hash(template: &Value) -> String {
    safe_encode(&fnv1a32(canonical(template).as_bytes()).to_string())
}

/// `n` characters of the safe alphabet derived from `seed`.
pub(super) fn suffix(seed: &str, n: usize) -> String {
    let mut h = fnv1a64(seed.as_bytes());
    (0..n)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// `generateName`-style name: `base` cut to 58 characters, then 5 characters from `seed`.
pub(super) fn generated_name(base: &str, seed: &str) -> String {
    let mut b: String = base.chars().take(MAX_GENERATE_BASE).collect();
    b.push_str(&suffix(seed, 5));
    b
}

/// 64 hex characters derived from `seed` (container IDs, image digests).
pub(super) fn hex64(seed: &str) -> String {
    (0..4u8)
        .map(|i| format!("{:016x}", fnv1a64(format!("{seed}/{i}").as_bytes())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn template_hash_is_key_order_independent_and_upstream_shaped() {
        let a = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        let b = json!({"spec": {"containers": [{"image": "nginx", "name": "app"}]}, "metadata": {"labels": {"tier": "fe", "app": "web"}}});
        let h = pod_template_hash(&a);
        assert_eq!(h, pod_template_hash(&b));
        assert!((1..=10).contains(&h.len()), "{h}");
        assert!(h.chars().all(|c| "456789bcdf".contains(c)), "{h}");
        let c = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx:2"}]}});
        assert_ne!(h, pod_template_hash(&c));
    }

    #[test]
    fn names() {
        assert_eq!(suffix("x", 5), suffix("x", 5));
        assert_ne!(suffix("x", 5), suffix("y", 5));
        assert!(suffix("x", 5).bytes().all(|b| ALPHABET.contains(&b)));
        let long = "a".repeat(80);
        let n = generated_name(&format!("{long}-"), "s");
        assert_eq!(n.len(), 63);
        assert_eq!(generated_name("web-", "s").len(), 9);
        assert_eq!(hex64("c").len(), 64);
    }
}
