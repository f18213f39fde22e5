//! Field tables for Kubernetes messages and the decoder that turns a message into the JSON
//! client-go would have sent: names are the JSON names, zero scalars are left out (Go's
//! `omitempty`) unless the Go field is a pointer (`keep`), nested structs stay as objects (Go
//! emits structs even when empty), `Quantity` and `IntOrString` become their JSON forms, and
//! fields the tables do not know are skipped.

use serde_json::{Map, Value};

use super::ProtoError;
use super::wire::{Reader, Wire};

/// The type of one field.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Str,
    /// Bytes, JSON-encoded as base64 (Secret data).
    Bytes,
    I32,
    I64,
    Bool,
    Msg(&'static [F]),
    /// `resource.Quantity` { string string = 1 } → "100m".
    Quantity,
    /// `intstr.IntOrString` { type = 1, intVal = 2, strVal = 3 } → 8080 or "http".
    IntOrStr,
    /// `map<string, V>`: repeated entry messages { key = 1, value = 2 }.
    Map(&'static Ty),
}

/// One field of a message table.
#[derive(Clone, Copy, Debug)]
pub struct F {
    pub num: u32,
    pub name: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// A Go pointer field: present on the wire means set, so zero values are kept.
    pub keep: bool,
    /// An embedded Go struct whose fields JSON inlines into the parent (VolumeSource,
    /// LocalObjectReference).
    pub inline: bool,
}

const fn field(num: u32, name: &'static str, ty: Ty) -> F {
    F {
        num,
        name,
        ty,
        repeated: false,
        keep: false,
        inline: false,
    }
}

pub const fn s(num: u32, name: &'static str) -> F {
    field(num, name, Ty::Str)
}
pub const fn strs(num: u32, name: &'static str) -> F {
    F {
        repeated: true,
        ..s(num, name)
    }
}
pub const fn i32f(num: u32, name: &'static str) -> F {
    field(num, name, Ty::I32)
}
pub const fn i64f(num: u32, name: &'static str) -> F {
    field(num, name, Ty::I64)
}
pub const fn boolf(num: u32, name: &'static str) -> F {
    field(num, name, Ty::Bool)
}
/// A pointer scalar (`*int32`, `*bool`, ...): kept even when zero.
pub const fn ptr(f: F) -> F {
    F { keep: true, ..f }
}
pub const fn msg(num: u32, name: &'static str, fields: &'static [F]) -> F {
    field(num, name, Ty::Msg(fields))
}
pub const fn msgs(num: u32, name: &'static str, fields: &'static [F]) -> F {
    F {
        repeated: true,
        ..msg(num, name, fields)
    }
}
pub const fn inline(num: u32, fields: &'static [F]) -> F {
    F {
        inline: true,
        ..msg(num, "", fields)
    }
}
pub const fn map(num: u32, name: &'static str, value: &'static Ty) -> F {
    field(num, name, Ty::Map(value))
}
pub const fn quantity(num: u32, name: &'static str) -> F {
    field(num, name, Ty::Quantity)
}
pub const fn int_or_str(num: u32, name: &'static str) -> F {
    field(num, name, Ty::IntOrStr)
}

/// Nesting limit; the tables are not recursive, this only guards future ones.
const MAX_DEPTH: usize = 32;

fn wrong_wire(f: &F, w: &Wire<'_>) -> ProtoError {
    ProtoError::Malformed(format!(
        "field {} ({}) arrived as {}, which its type does not allow",
        f.num,
        f.name,
        w.type_name()
    ))
}

fn utf8<'a>(b: &'a [u8], name: &str) -> Result<&'a str, ProtoError> {
    std::str::from_utf8(b)
        .map_err(|_| ProtoError::Malformed(format!("field {name} is not valid UTF-8")))
}

/// Decodes one message with its table.
pub fn decode(buf: &[u8], fields: &[F]) -> Result<Map<String, Value>, ProtoError> {
    message(buf, fields, 0)
}

fn message(buf: &[u8], fields: &[F], depth: usize) -> Result<Map<String, Value>, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::Malformed("messages nested too deeply".into()));
    }
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while let Some((num, w)) = r.next_field()? {
        let Some(f) = fields.iter().find(|f| f.num == num) else {
            continue;
        };
        if f.inline {
            let Wire::Len(b) = w else {
                return Err(wrong_wire(f, &w));
            };
            if let Ty::Msg(inner) = f.ty {
                out.extend(message(b, inner, depth + 1)?);
            }
            continue;
        }
        if let Ty::Map(vty) = f.ty {
            let Wire::Len(b) = w else {
                return Err(wrong_wire(f, &w));
            };
            let (k, v) = map_entry(b, f, vty, depth)?;
            let m = out
                .entry(f.name)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = m {
                m.insert(k, v);
            }
            continue;
        }
        if f.repeated {
            let arr = out
                .entry(f.name)
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(arr) = arr else { continue };
            match (f.ty, w) {
                // Packed repeated scalars (proto3 style); Kubernetes' proto2 does not pack,
                // but accepting both costs little.
                (Ty::I32 | Ty::I64 | Ty::Bool, Wire::Len(b)) => {
                    let mut pr = Reader::new(b);
                    while pr.remaining() > 0 {
                        let v = pr.varint()?;
                        arr.push(scalar(f, Wire::Varint(v))?);
                    }
                }
                _ => {
                    if let Some(v) = value(f, f.ty, w, depth)? {
                        arr.push(v);
                    }
                }
            }
            continue;
        }
        match value(f, f.ty, w, depth)? {
            Some(v) if f.keep || !is_zero(&v) => {
                out.insert(f.name.to_string(), v);
            }
            // A later zero occurrence overrides an earlier value (last one wins).
            _ => {
                out.remove(f.name);
            }
        }
    }
    Ok(out)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Null => true,
        // Go emits struct fields even when empty (`"strategy": {}`).
        Value::Object(_) | Value::Array(_) => false,
    }
}

fn map_entry(b: &[u8], f: &F, vty: &Ty, depth: usize) -> Result<(String, Value), ProtoError> {
    let mut key = String::new();
    let mut val = None;
    let mut r = Reader::new(b);
    while let Some((num, w)) = r.next_field()? {
        match (num, w) {
            (1, Wire::Len(k)) => key = utf8(k, f.name)?.to_string(),
            (1, w) => return Err(wrong_wire(f, &w)),
            (2, w) => val = value(f, *vty, w, depth)?,
            _ => {}
        }
    }
    // An entry without a value holds the zero value of its type.
    let val = match val {
        Some(v) => v,
        None => value(f, *vty, Wire::Len(&[]), depth)?.unwrap_or(Value::Null),
    };
    Ok((key, val))
}

fn scalar(f: &F, w: Wire<'_>) -> Result<Value, ProtoError> {
    match (f.ty, w) {
        // int32 travels sign-extended to 64 bits; truncation restores negatives.
        (Ty::I32, Wire::Varint(v)) => Ok(Value::from(v as i32)),
        (Ty::I64, Wire::Varint(v)) => Ok(Value::from(v as i64)),
        (Ty::Bool, Wire::Varint(v)) => Ok(Value::Bool(v != 0)),
        (_, w) => Err(wrong_wire(f, &w)),
    }
}

/// The JSON value of one field occurrence; `None` for values JSON leaves out.
fn value(f: &F, ty: Ty, w: Wire<'_>, depth: usize) -> Result<Option<Value>, ProtoError> {
    fn bytes<'a>(f: &F, w: Wire<'a>) -> Result<&'a [u8], ProtoError> {
        match w {
            Wire::Len(b) => Ok(b),
            other => Err(wrong_wire(f, &other)),
        }
    }
    let len = |w| bytes(f, w);
    Ok(Some(match ty {
        Ty::Str => Value::String(utf8(len(w)?, f.name)?.to_string()),
        Ty::Bytes => Value::String(base64(len(w)?)),
        Ty::I32 | Ty::I64 | Ty::Bool => scalar(&F { ty, ..*f }, w)?,
        Ty::Msg(inner) => Value::Object(message(len(w)?, inner, depth + 1)?),
        Ty::Quantity => {
            let m = message(len(w)?, &[s(1, "string")], depth + 1)?;
            m.get("string")
                .cloned()
                .unwrap_or_else(|| Value::String("0".into()))
        }
        Ty::IntOrStr => {
            const FIELDS: &[F] = &[i64f(1, "type"), i32f(2, "intVal"), s(3, "strVal")];
            let m = message(len(w)?, FIELDS, depth + 1)?;
            if m.get("type").and_then(Value::as_i64) == Some(1) {
                m.get("strVal")
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new()))
            } else {
                m.get("intVal").cloned().unwrap_or_else(|| Value::from(0))
            }
        }
        Ty::Map(_) => return Ok(None),
    }))
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
fn base64(b: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | u32::from(*x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        for (input, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0x00], "//4A"),
        ] {
            assert_eq!(base64(input), want);
        }
    }
}
