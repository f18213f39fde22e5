//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), which
//! typed client-go calls send: `kubectl create configmap|secret|namespace|serviceaccount|
//! deployment|service|job|cronjob|role|...` and `kubectl auth can-i`. A body is the magic
//! `k8s\0` followed by a `runtime.Unknown` envelope { typeMeta = 1 { apiVersion = 1, kind = 2 },
//! raw = 2 (the object's own message), contentEncoding = 3, contentType = 4 }. It is turned into
//! the JSON object the client would otherwise have sent, so the normal JSON path handles it; the
//! reply is always JSON, which client-go accepts.
//!
//! A small hand-written reader plus per-kind field tables was chosen over `k8s-pb` + `prost`:
//! those would give typed structs, not JSON, so each kind would still need a conversion, and
//! `k8s-pb` compiles every Kubernetes API (minutes of build time on shared cores).

mod kinds;
pub mod review;
mod schema;
mod wire;

use serde_json::{Map, Value};

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// Not decodable: bad magic, truncated fields, wrong wire types, invalid UTF-8.
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
    /// A well-formed envelope for a kind the sandbox has no table for.
    #[error(
        "the sandbox cannot decode protobuf request bodies of kind {kind} ({api_version}); send it \
         as JSON or YAML instead, e.g. `kubectl create ... --dry-run=client -o yaml | kubectl \
         apply -f -` or `kubectl apply -f <file>.yaml`"
    )]
    UnsupportedKind { api_version: String, kind: String },
}

/// The `runtime.Unknown` envelope.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
    pub content_encoding: String,
    pub content_type: String,
}

fn string(b: &[u8], field: &str) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| ProtoError::Malformed(format!("envelope field {field} is not valid UTF-8")))
}

/// Splits a body into its envelope; the object bytes stay undecoded.
pub fn envelope(body: &[u8]) -> Result<Envelope<'_>, ProtoError> {
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return Err(ProtoError::Malformed(
            "the body does not start with the Kubernetes protobuf prefix k8s\\0".into(),
        ));
    };
    let mut env = Envelope::default();
    let mut r = wire::Reader::new(rest);
    while let Some((num, w)) = r.next_field()? {
        let wire::Wire::Len(b) = w else {
            return Err(ProtoError::Malformed(format!(
                "envelope field {num} arrived as {}, expected length-delimited",
                w.type_name()
            )));
        };
        match num {
            1 => {
                let mut tm = wire::Reader::new(b);
                while let Some((n, w)) = tm.next_field()? {
                    match (n, w) {
                        (1, wire::Wire::Len(v)) => env.api_version = string(v, "apiVersion")?,
                        (2, wire::Wire::Len(v)) => env.kind = string(v, "kind")?,
                        (1 | 2, w) => {
                            return Err(ProtoError::Malformed(format!(
                                "typeMeta field {n} arrived as {}",
                                w.type_name()
                            )));
                        }
                        _ => {}
                    }
                }
            }
            2 => env.raw = b,
            3 => env.content_encoding = string(b, "contentEncoding")?,
            4 => env.content_type = string(b, "contentType")?,
            _ => {}
        }
    }
    Ok(env)
}

/// Decodes a whole protobuf body into the JSON object (with `apiVersion` and `kind`).
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let env = envelope(body)?;
    if env.kind.is_empty() {
        return Err(ProtoError::Malformed(
            "Object 'Kind' is missing in the protobuf envelope".into(),
        ));
    }
    if !env.content_encoding.is_empty() {
        return Err(ProtoError::Malformed(format!(
            "unsupported contentEncoding {:?} in the protobuf envelope",
            env.content_encoding
        )));
    }
    let Some((_, _, fields)) = kinds::KINDS
        .iter()
        .find(|(av, k, _)| *av == env.api_version && *k == env.kind)
    else {
        return Err(ProtoError::UnsupportedKind {
            api_version: env.api_version,
            kind: env.kind,
        });
    };
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::String(env.kind.clone()));
    obj.insert("apiVersion".into(), Value::String(env.api_version.clone()));
    obj.extend(schema::decode(env.raw, fields)?);
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests;
