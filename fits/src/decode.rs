//! Decoding BINTABLE fields of a block of rows into Arrow arrays: big-endian numbers, TSCAL/TZERO, TNULL, logicals,
//! bits, strings, complex pairs, fixed arrays (TDIM) and variable-length arrays from the heap.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, new_null_array, FixedSizeListArray, ListArray, PrimitiveArray, StringBuilder,
    StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};

use crate::table::{Column, Kind, Scaling};

/// A block of rows as fetched: the field bytes of row `i` that start at row byte `j` are at `data[i * stride + j - shift]`
/// (a whole-row read has `stride` = NAXIS1 and `shift` 0; a read of only the bytes `shift..shift + stride` of each row
/// packs them back to back).
pub struct Rows<'a> {
    data: &'a [u8],
    count: usize,
    stride: usize,
    shift: usize,
}

impl<'a> Rows<'a> {
    pub fn new(data: &'a [u8], count: usize, stride: usize, shift: usize) -> Result<Self, String> {
        if count.checked_mul(stride) != Some(data.len()) {
            return Err(format!("{} bytes do not hold {count} rows of {stride} bytes", data.len()));
        }
        Ok(Self { data, count, stride, shift })
    }

    /// Each row's bytes of `column`. The caller fetched `shift..shift + stride` to cover every decoded column.
    fn fields(&self, column: &Column) -> Result<impl Iterator<Item = &'a [u8]> + use<'a>, String> {
        let start = column.offset.checked_sub(self.shift).filter(|s| s + column.width() <= self.stride);
        let start = start.ok_or_else(|| format!("column '{}' is outside the bytes read", column.name))?;
        let (data, width, stride) = (self.data, column.width(), self.stride);
        Ok((0..self.count).map(move |r| &data[r * stride + start..r * stride + start + width]))
    }
}

/// A column's values for the rows, of type `column.data_type()`.
pub fn decode(column: &Column, rows: &Rows) -> Result<ArrayRef, String> {
    if column.var_len.is_some() {
        return Err(format!("column '{}' is a variable-length array: decode it with `decode_var`", column.name));
    }
    if column.width() == 0 {
        // A field of repeat count 0 holds nothing: null in every row.
        return Ok(new_null_array(&column.data_type(), rows.count));
    }
    let flat = match column.kind {
        Kind::Char => strings(column, rows)?,
        Kind::Bit => {
            let mut values = BooleanBuilder::with_capacity(rows.count * column.repeat);
            for field in rows.fields(column)? {
                values.extend((0..column.repeat).map(|i| Some(field[i / 8] & (0x80 >> (i % 8)) != 0)));
            }
            Arc::new(values.finish())
        }
        _ => elements(column, rows.fields(column)?)?,
    };
    Ok(nest(column, flat))
}

/// The byte ranges in the heap (from its start) of each row's variable-length array, with their element counts.
pub fn heap_ranges(column: &Column, rows: &Rows, heap_len: u64) -> Result<Vec<(std::ops::Range<u64>, usize)>, String> {
    let long = column.var_len.ok_or_else(|| format!("column '{}' is not a variable-length array", column.name))?.long;
    let element_bytes = |n: u64| match column.kind {
        Kind::Bit => Some(n.div_ceil(8)),
        kind => n.checked_mul(kind.size() as u64),
    };
    rows.fields(column)?
        .map(|field| {
            let (count, offset) = match (long, field.len()) {
                (_, 0) => (0, 0),
                (false, _) => (be_u32(&field[..4]) as u64, be_u32(&field[4..8]) as u64),
                (true, _) => (be_u64(&field[..8]), be_u64(&field[8..16])),
            };
            let end = element_bytes(count).and_then(|n| n.checked_add(offset)).filter(|&end| end <= heap_len);
            let end = end.ok_or_else(|| {
                format!("column '{}': an array of {count} elements at heap offset {offset} lies outside the heap", column.name)
            })?;
            let count = usize::try_from(count).map_err(|_| "array length out of range".to_string())?;
            Ok((offset..end, count))
        })
        .collect()
}

/// A variable-length column from each row's heap bytes (as located by [`heap_ranges`]).
pub fn decode_var(column: &Column, arrays: &[(&[u8], usize)]) -> Result<ArrayRef, String> {
    if column.kind == Kind::Char {
        let mut strings = StringBuilder::new();
        arrays.iter().for_each(|(bytes, _)| strings.append_option(text(bytes)));
        return Ok(Arc::new(strings.finish()));
    }
    let values: ArrayRef = if column.kind == Kind::Bit {
        let mut bits = BooleanBuilder::new();
        for (bytes, count) in arrays {
            bits.extend((0..*count).map(|i| Some(bytes[i / 8] & (0x80 >> (i % 8)) != 0)));
        }
        Arc::new(bits.finish())
    } else {
        elements(column, arrays.iter().map(|(bytes, _)| *bytes))?
    };
    let offsets = OffsetBuffer::<i32>::from_lengths(arrays.iter().map(|(_, n)| *n));
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(field, offsets, values, None).map_err(|e| e.to_string())?))
}

/// Wrap a flat array of every row's elements into the column's (nested) fixed-size lists.
fn nest(column: &Column, flat: ArrayRef) -> ArrayRef {
    column.shape().iter().rev().fold(flat, |inner, &n| {
        let field = Arc::new(Field::new_list_field(inner.data_type().clone(), true));
        Arc::new(FixedSizeListArray::new(field, n as i32, inner, None))
    })
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A FITS string: up to the first NUL, trailing blanks dropped; empty is null (FITS has no null string, and astropy
/// writes a masked string as empty and reads an empty one as masked).
fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let trimmed = bytes[..end].trim_ascii_end();
    (!trimmed.is_empty()).then(|| String::from_utf8_lossy(trimmed).into_owned())
}

fn strings(column: &Column, rows: &Rows) -> Result<ArrayRef, String> {
    let len = column.string_len();
    let mut out = StringBuilder::with_capacity(rows.count, rows.count * len);
    for field in rows.fields(column)? {
        field.chunks_exact(len).for_each(|s| out.append_option(text(s)));
    }
    Ok(Arc::new(out.finish()))
}

/// Elements of a fixed-size kind (not strings or bits): each item of `fields` holds whole elements.
fn elements<'a>(column: &Column, fields: impl Iterator<Item = &'a [u8]>) -> Result<ArrayRef, String> {
    let name = &column.name;
    Ok(match (column.kind, column.scaling) {
        (Kind::Logical, _) => {
            let mut values = BooleanBuilder::new();
            for &b in fields.flatten() {
                values.append_option(match b {
                    b'T' => Some(true),
                    b'F' => Some(false),
                    0 => None,
                    other => return Err(format!("column '{name}': logical byte {other:#04x} is not T, F or 0")),
                });
            }
            Arc::new(values.finish())
        }
        (Kind::U8, scaling) => integers::<1, UInt8Type, Int8Type>(fields, column, scaling, u8::from_be_bytes, |v| (v ^ 0x80) as i8),
        (Kind::I16, scaling) => {
            integers::<2, Int16Type, UInt16Type>(fields, column, scaling, i16::from_be_bytes, |v| (v as u16) ^ 0x8000)
        }
        (Kind::I32, scaling) => {
            integers::<4, Int32Type, UInt32Type>(fields, column, scaling, i32::from_be_bytes, |v| (v as u32) ^ (1 << 31))
        }
        (Kind::I64, scaling) => {
            integers::<8, Int64Type, UInt64Type>(fields, column, scaling, i64::from_be_bytes, |v| (v as u64) ^ (1 << 63))
        }
        (Kind::F32, Scaling::Linear { scale, zero }) => {
            float64(values::<4, _>(fields, |b| zero + scale * f32::from_be_bytes(b) as f64))
        }
        (Kind::F32, _) => Arc::new(PrimitiveArray::<Float32Type>::new(values::<4, _>(fields, f32::from_be_bytes).into(), None)),
        (Kind::F64, Scaling::Linear { scale, zero }) => float64(values::<8, _>(fields, |b| zero + scale * f64::from_be_bytes(b))),
        (Kind::F64, _) => float64(values::<8, _>(fields, f64::from_be_bytes)),
        (Kind::C64, _) => complex::<Float32Type>(values::<4, _>(fields, f32::from_be_bytes)),
        (Kind::C128, _) => complex::<Float64Type>(values::<8, _>(fields, f64::from_be_bytes)),
        (Kind::Char | Kind::Bit, _) => return Err(format!("column '{name}': not a fixed-size numeric field")),
    })
}

fn float64(values: Vec<f64>) -> ArrayRef {
    Arc::new(PrimitiveArray::<Float64Type>::new(values.into(), None))
}

/// (real, imaginary) pairs as a struct of two float arrays.
fn complex<T: ArrowPrimitiveType>(parts: Vec<T::Native>) -> ArrayRef {
    let re = PrimitiveArray::<T>::from_iter_values(parts.iter().step_by(2).copied());
    let im = PrimitiveArray::<T>::from_iter_values(parts.iter().skip(1).step_by(2).copied());
    let fields = vec![Field::new("re", T::DATA_TYPE, true), Field::new("im", T::DATA_TYPE, true)];
    Arc::new(StructArray::new(fields.into(), vec![Arc::new(re), Arc::new(im)], None))
}

/// Big-endian values of `N` bytes each, read straight from the rows' fields (one pass, no copy of the bytes).
fn values<'a, const N: usize, T>(fields: impl Iterator<Item = &'a [u8]>, from_be: impl Fn([u8; N]) -> T) -> Vec<T> {
    let mut out = Vec::new();
    for field in fields {
        out.extend(field.as_chunks::<N>().0.iter().map(|&b| from_be(b)));
    }
    out
}

/// Integers: TNULL against the stored value, then the signedness offset or the linear scaling.
fn integers<'a, const N: usize, Stored, Offset>(
    fields: impl Iterator<Item = &'a [u8]>,
    column: &Column,
    scaling: Scaling,
    from_be: fn([u8; N]) -> Stored::Native,
    offset: fn(Stored::Native) -> Offset::Native,
) -> ArrayRef
where
    Stored: ArrowPrimitiveType,
    Offset: ArrowPrimitiveType,
    Stored::Native: Into<i64>,
{
    let raw = values::<N, _>(fields, from_be);
    let nulls = column.null.and_then(|null| {
        let valid: Vec<bool> = raw.iter().map(|&v| v.into() != null).collect();
        valid.contains(&false).then(|| NullBuffer::from(valid))
    });
    match scaling {
        Scaling::None => Arc::new(PrimitiveArray::<Stored>::new(raw.into(), nulls)),
        Scaling::Offset => Arc::new(PrimitiveArray::<Offset>::new(raw.into_iter().map(offset).collect(), nulls)),
        Scaling::Linear { scale, zero } => Arc::new(PrimitiveArray::<Float64Type>::new(
            raw.into_iter().map(|v| zero + scale * v.into() as f64).collect(),
            nulls,
        )),
    }
}
