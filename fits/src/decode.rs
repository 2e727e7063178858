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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed, TestRunner};

    use super::*;
    use crate::header::{BLOCK, Header};
    use crate::table::{Hdu, Table};

    /// A BINTABLE header of `cards` (after the mandatory ones, which take `naxis1`, `naxis2` and `fields`), or why
    /// its cards do not parse.
    fn header(naxis1: &str, naxis2: &str, fields: usize, cards: &[String]) -> Result<Header, String> {
        let mut lines = vec![
            "XTENSION= 'BINTABLE'".to_string(),
            "BITPIX  =                    8".to_string(),
            "NAXIS   =                    2".to_string(),
            format!("NAXIS1  = {naxis1:>20}"),
            format!("NAXIS2  = {naxis2:>20}"),
            format!("TFIELDS = {fields:>20}"),
        ];
        lines.extend(cards.iter().cloned());
        lines.push("END".into());
        let mut bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{:<80}", &l[..l.len().min(80)]).into_bytes()).collect();
        bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, b' ');
        Header::parse(&bytes)
    }

    /// A TFORM and the bytes it takes in a row (None when it is not a valid one): repeat counts small, absent or
    /// beyond any limit, every type letter, P and Q arrays; or any text.
    fn tform() -> impl Strategy<Value = (String, Option<u64>)> {
        const LETTERS: &[u8] = b"LXBIJKAEDCM";
        let repeat = prop_oneof![2 => Just(None), 6 => (0u64..40).prop_map(Some), 1 => any::<u64>().prop_map(Some)];
        let valid = (repeat, prop_oneof![Just(""), Just("P"), Just("Q")], 0..LETTERS.len(), "(\\([0-9]{0,3}\\))?").prop_map(
            |(repeat, var_len, letter, max)| {
                let letter = LETTERS[letter] as char;
                let size = match letter {
                    'L' | 'B' | 'A' => 1,
                    'I' => 2,
                    'J' | 'E' => 4,
                    'K' | 'D' | 'C' => 8,
                    _ => 16,
                };
                let r = repeat.unwrap_or(1);
                let width = match (var_len, letter) {
                    ("P", _) => r.checked_mul(8),
                    ("Q", _) => r.checked_mul(16),
                    (_, 'X') => Some(r.div_ceil(8)),
                    _ => r.checked_mul(size),
                };
                let max = if var_len.is_empty() { "" } else { max.as_str() };
                (format!("{}{var_len}{letter}{max}", repeat.map(|r| r.to_string()).unwrap_or_default()), width)
            },
        );
        prop_oneof![8 => valid, 1 => "[ -&(-~]{0,10}".prop_map(|t| (t, None))]
    }

    /// One field: its TFORM (and width), then maybe TDIM, TSCAL/TZERO and TNULL with any values.
    fn field_cards() -> impl Strategy<Value = (Option<u64>, Vec<(String, String)>)> {
        let number = prop_oneof!["-?[0-9]{1,25}", "-?[0-9]{0,3}\\.[0-9]{0,3}(E[+-]?[0-9]{1,3})?", Just("32768".to_string())];
        let extra = prop_oneof![
            "\\(([0-9]{1,3},){0,2}[0-9]{1,3}\\)".prop_map(|d| ("TDIM".to_string(), format!("'{d}'"))),
            number.clone().prop_map(|v| ("TSCAL".to_string(), v)),
            number.clone().prop_map(|v| ("TZERO".to_string(), v)),
            number.prop_map(|v| ("TNULL".to_string(), v)),
        ];
        (tform(), prop::collection::vec(extra, 0..2)).prop_map(|((tform, width), mut extra)| {
            extra.insert(0, ("TFORM".to_string(), format!("'{tform}'")));
            (width, extra)
        })
    }

    /// Any header is a table or an error, and any bytes in the rows of a table (and its heap) decode to arrays of the
    /// schema's types or are an error: never a panic.
    #[test]
    fn any_header_and_any_row_bytes_are_arrays_or_errors() {
        let fields = prop::collection::vec(field_cards(), 1..4);
        // NAXIS1: the sum of the widths (a consistent header) or any number (a lying one).
        let naxis1 = prop_oneof![3 => Just(None), 1 => "[0-9]{1,20}".prop_map(Some)];
        let strategy = (fields, naxis1, 0u64..4, prop::collection::vec(any::<u8>(), 1..600), 0u64..64);
        let config = Config { cases: 4096, rng_seed: RngSeed::Fixed(15), failure_persistence: None, ..Config::default() };
        let (tables, arrays) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        TestRunner::new(config)
            .run(&strategy, |(fields, naxis1, rows, bytes, heap_len)| {
                let widths = fields.iter().try_fold(0u64, |sum, (width, _)| width.and_then(|w| sum.checked_add(w)));
                let naxis1 = naxis1.or(widths.map(|w| w.to_string())).unwrap_or_else(|| "1".into());
                let cards: Vec<String> = fields
                    .iter()
                    .enumerate()
                    .flat_map(|(i, (_, cards))| cards.iter().map(move |(k, v)| format!("{:<8}= {v:>20}", format!("{k}{}", i + 1))))
                    .collect();
                let table = header(&naxis1, &rows.to_string(), fields.len(), &cards)
                    .and_then(|header| Hdu::new(1, header, 2 * BLOCK as u64))
                    .and_then(Table::new);
                let Ok(table) = table else { return Ok(()) };
                let schema = table.schema();
                tables.set(tables.get() + 1);
                // Rows and heap of the fuzzed bytes, repeated to fill them.
                if table.row_len > 100_000 {
                    return Ok(());
                }
                let need = table.row_len * rows as usize;
                let data: Vec<u8> = bytes.iter().copied().cycle().take(need).collect();
                let rows_bytes = Rows::new(&data, rows as usize, table.row_len, 0).unwrap();
                let heap: Vec<u8> = bytes.iter().copied().cycle().take(heap_len as usize).collect();
                for (column, field) in table.columns.iter().zip(schema.fields()) {
                    let array = match column.var_len {
                        None => decode(column, &rows_bytes),
                        Some(_) => heap_ranges(column, &rows_bytes, heap_len).and_then(|ranges| {
                            let arrays: Vec<(&[u8], usize)> =
                                ranges.iter().map(|(r, n)| (&heap[r.start as usize..r.end as usize], *n)).collect();
                            decode_var(column, &arrays)
                        }),
                    };
                    if let Ok(array) = array {
                        prop_assert_eq!(array.data_type(), field.data_type(), "{}", column.tform);
                        prop_assert_eq!(array.len(), rows as usize);
                        arrays.set(arrays.get() + 1);
                    }
                }
                Ok(())
            })
            .unwrap();
        // Many cases reach the decoder, not only the header checks (589 tables, 571 arrays with this seed).
        assert!(tables.get() > 400 && arrays.get() > 400, "{} tables, {} arrays decoded", tables.get(), arrays.get());
    }
}
