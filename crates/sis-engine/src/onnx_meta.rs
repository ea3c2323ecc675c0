//! A minimal, bounds-checked reader of the parts of an ONNX file that decide
//! whether sherpa-onnx will accept it: custom metadata and graph input/output
//! names. sherpa-onnx terminates the whole process on a missing metadata key,
//! so packs are checked with this before any sherpa-onnx call.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct OnnxInfo {
    pub metadata: BTreeMap<String, String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl OnnxInfo {
    pub fn int(&self, key: &str) -> Option<i64> {
        self.metadata.get(key)?.trim().parse().ok()
    }
}

/// (field number, wire type, payload of a length-delimited field)
type Field<'a> = (u64, u8, &'a [u8]);

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or("truncated varint")?;
            self.at += 1;
            v |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// Next (field number, wire type, payload for length-delimited fields).
    fn field(&mut self) -> Result<Option<Field<'a>>, String> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wt) = (key >> 3, (key & 7) as u8);
        let payload: &[u8] = match wt {
            0 => {
                self.varint()?;
                &[]
            }
            1 => self.skip(8)?,
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                self.skip(n)?
            }
            5 => self.skip(4)?,
            _ => return Err(format!("unsupported wire type {wt}")),
        };
        Ok(Some((num, wt, payload)))
    }

    fn skip(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.at..end).ok_or("truncated field")?;
        self.at = end;
        Ok(s)
    }
}

fn fields(buf: &[u8]) -> impl Iterator<Item = Result<Field<'_>, String>> {
    let mut r = Reader { buf, at: 0 };
    std::iter::from_fn(move || r.field().transpose())
}

fn string_field(buf: &[u8], want: u64) -> Result<Option<String>, String> {
    for f in fields(buf) {
        let (num, wt, payload) = f?;
        if num == want && wt == 2 {
            return Ok(Some(String::from_utf8_lossy(payload).into_owned()));
        }
    }
    Ok(None)
}

/// Parses ModelProto: graph = 7 (input = 11, output = 12; ValueInfo.name = 1),
/// metadata_props = 14 (key = 1, value = 2).
pub fn parse(bytes: &[u8]) -> Result<OnnxInfo, String> {
    let mut info = OnnxInfo::default();
    let mut saw_graph = false;
    for f in fields(bytes) {
        let (num, wt, payload) = f?;
        match (num, wt) {
            (7, 2) => {
                saw_graph = true;
                for g in fields(payload) {
                    let (gnum, gwt, gp) = g?;
                    if gwt != 2 {
                        continue;
                    }
                    let target = match gnum {
                        11 => &mut info.inputs,
                        12 => &mut info.outputs,
                        _ => continue,
                    };
                    target.push(string_field(gp, 1)?.unwrap_or_default());
                }
            }
            (14, 2) => {
                let key = string_field(payload, 1)?.unwrap_or_default();
                let value = string_field(payload, 2)?.unwrap_or_default();
                info.metadata.insert(key, value);
            }
            _ => {}
        }
    }
    if !saw_graph {
        return Err("no graph: not an ONNX model".into());
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8];
        v.push(payload.len() as u8);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn reads_synthetic_model() {
        let input = ld(11, &ld(1, b"x"));
        let output = ld(12, &ld(1, b"y"));
        let graph = ld(7, &[input, output].concat());
        let meta = ld(14, &[ld(1, b"vocab_size"), ld(2, b"417")].concat());
        let model = [vec![0x08, 0x07], graph, meta].concat(); // ir_version = 7
        let info = parse(&model).unwrap();
        assert_eq!(info.inputs, vec!["x"]);
        assert_eq!(info.outputs, vec!["y"]);
        assert_eq!(info.int("vocab_size"), Some(417));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
        assert!(parse(b"not an onnx file at all").is_err());
    }
}
