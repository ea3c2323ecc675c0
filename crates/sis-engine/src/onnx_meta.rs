//! A minimal, bounds-checked reader of the parts of an ONNX file that decide
//! whether sherpa-onnx will accept it: custom metadata and graph input/output
//! names, element types and shapes. sherpa-onnx terminates the whole process
//! on a missing metadata key, so packs are checked with this before any
//! sherpa-onnx call.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct OnnxInfo {
    pub metadata: BTreeMap<String, String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The type of each input, in the order of `inputs`.
    pub input_types: Vec<TensorType>,
    /// The type of each output, in the order of `outputs`.
    pub output_types: Vec<TensorType>,
}

/// ONNX `TensorProto.DataType` values the checks compare with.
pub const FLOAT: i64 = 1;
pub const INT32: i64 = 6;
pub const INT64: i64 = 7;

/// A graph input's or output's tensor type, as far as the file states it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TensorType {
    /// `TensorProto.DataType` ([`FLOAT`], [`INT64`], ...).
    pub elem_type: Option<i64>,
    /// One entry per axis: `Some(n)` for a fixed size, `None` for a named
    /// (dynamic) or unknown one. `None` when the rank is not stated.
    pub dims: Option<Vec<Option<i64>>>,
}

impl TensorType {
    /// The fixed size of `axis`, if the file states one.
    pub fn dim(&self, axis: usize) -> Option<i64> {
        self.dims.as_ref()?.get(axis).copied().flatten()
    }

    /// The rank, if stated.
    pub fn rank(&self) -> Option<usize> {
        self.dims.as_ref().map(Vec::len)
    }
}

impl OnnxInfo {
    pub fn int(&self, key: &str) -> Option<i64> {
        self.metadata.get(key)?.trim().parse().ok()
    }
}

/// (field number, wire type, payload of a length-delimited field, value of
/// a varint field)
type Field<'a> = (u64, u8, &'a [u8], u64);

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
        let mut value = 0;
        let payload: &[u8] = match wt {
            0 => {
                value = self.varint()?;
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
        Ok(Some((num, wt, payload, value)))
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
        let (num, wt, payload, _) = f?;
        if num == want && wt == 2 {
            return Ok(Some(String::from_utf8_lossy(payload).into_owned()));
        }
    }
    Ok(None)
}

/// ValueInfoProto.type (2) -> TypeProto.tensor_type (1) -> elem_type (1),
/// shape (2) -> TensorShapeProto.dim (1) -> dim_value (1) | dim_param (2).
fn tensor_type(value_info: &[u8]) -> Result<TensorType, String> {
    let mut out = TensorType::default();
    for f in fields(value_info) {
        let (num, wt, ty, _) = f?;
        if (num, wt) != (2, 2) {
            continue;
        }
        for f in fields(ty) {
            let (num, wt, tensor, _) = f?;
            if (num, wt) != (1, 2) {
                continue;
            }
            for f in fields(tensor) {
                match f? {
                    (1, 0, _, v) => out.elem_type = Some(v as i64),
                    (2, 2, shape, _) => {
                        let mut dims = Vec::new();
                        for f in fields(shape) {
                            let (num, wt, dim, _) = f?;
                            if (num, wt) != (1, 2) {
                                continue;
                            }
                            let mut size = None;
                            for f in fields(dim) {
                                if let (1, 0, _, v) = f? {
                                    size = Some(v as i64);
                                }
                            }
                            dims.push(size);
                        }
                        out.dims = Some(dims);
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// Parses ModelProto: graph = 7 (input = 11, output = 12; ValueInfo.name = 1,
/// ValueInfo.type = 2), metadata_props = 14 (key = 1, value = 2).
pub fn parse(bytes: &[u8]) -> Result<OnnxInfo, String> {
    let mut info = OnnxInfo::default();
    let mut saw_graph = false;
    for f in fields(bytes) {
        let (num, wt, payload, _) = f?;
        match (num, wt) {
            (7, 2) => {
                saw_graph = true;
                for g in fields(payload) {
                    let (gnum, gwt, gp, _) = g?;
                    if gwt != 2 {
                        continue;
                    }
                    let (names, types) = match gnum {
                        11 => (&mut info.inputs, &mut info.input_types),
                        12 => (&mut info.outputs, &mut info.output_types),
                        _ => continue,
                    };
                    names.push(string_field(gp, 1)?.unwrap_or_default());
                    types.push(tensor_type(gp)?);
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
    fn reads_types_and_shapes() {
        // x: float (N, 35, 80); y: int64 with no shape
        let dims = [ld(1, &ld(2, b"N")), ld(1, &[0x08, 35]), ld(1, &[0x08, 80])].concat();
        let tensor = [vec![0x08, 0x01], ld(2, &dims)].concat();
        let input = ld(11, &[ld(1, b"x"), ld(2, &ld(1, &tensor))].concat());
        let output = ld(12, &[ld(1, b"y"), ld(2, &ld(1, &[0x08, 0x07]))].concat());
        let model = [vec![0x08, 0x07], ld(7, &[input, output].concat())].concat();
        let info = parse(&model).unwrap();
        let x = &info.input_types[0];
        assert_eq!(x.elem_type, Some(FLOAT));
        assert_eq!(x.dims, Some(vec![None, Some(35), Some(80)]));
        assert_eq!(
            (x.dim(0), x.dim(1), x.dim(2), x.dim(3)),
            (None, Some(35), Some(80), None)
        );
        let y = &info.output_types[0];
        assert_eq!((y.elem_type, y.rank()), (Some(INT64), None));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
        assert!(parse(b"not an onnx file at all").is_err());
    }
}
