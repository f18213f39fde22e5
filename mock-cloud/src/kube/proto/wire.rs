//! The protobuf wire format, read without a schema: varints, fixed 32/64-bit values and
//! length-delimited fields. Every read is bounds-checked, so hostile input yields an error.

use super::ProtoError;

/// One field value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Len(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }
}

/// A cursor over the fields of one message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn malformed(&self, what: &str) -> ProtoError {
        ProtoError::Malformed(format!("{what} at byte {}", self.pos))
    }

    pub fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.malformed("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && b > 1 {
                return Err(self.malformed("varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.malformed(&format!("field of {n} bytes runs past the end")))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let num = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n != 0 && *n < (1 << 29))
            .ok_or_else(|| self.malformed(&format!("invalid field number {}", key >> 3)))?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Wire::Fixed64(u64::from_le_bytes(fixed::<8>(b)))
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| self.malformed("length does not fit in memory"))?;
                Wire::Len(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes(fixed::<4>(b)))
            }
            t => {
                return Err(self.malformed(&format!(
                    "unsupported wire type {t} for field {num} (groups are not used by Kubernetes)"
                )));
            }
        };
        Ok(Some((num, wire)))
    }
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type() {
        // field 1 varint 300, field 2 "hi", field 3 fixed64 1, field 4 fixed32 2.
        let buf = [
            0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0,
            0,
        ];
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field().unwrap(), Some((1, Wire::Varint(300))));
        assert_eq!(r.next_field().unwrap(), Some((2, Wire::Len(b"hi"))));
        assert_eq!(r.next_field().unwrap(), Some((3, Wire::Fixed64(1))));
        assert_eq!(r.next_field().unwrap(), Some((4, Wire::Fixed32(2))));
        assert_eq!(r.next_field().unwrap(), None);
    }

    #[test]
    fn rejects_broken_input() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x08], "truncated varint"),
            (&[0x12, 0x05, b'a'], "runs past the end"),
            (&[0x0b], "unsupported wire type 3"),
            (&[0x00, 0x01], "invalid field number 0"),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ],
                "overflows",
            ),
            (&[0x19, 1, 2], "runs past the end"),
        ];
        for (buf, want) in cases {
            let err = Reader::new(buf).next_field().unwrap_err().to_string();
            assert!(err.contains(want), "{buf:?}: {err}");
        }
    }
}
