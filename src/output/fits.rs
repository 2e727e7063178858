//! Results as a FITS binary table (`-o out.fits`), the format TOPCAT and astropy users open every day: one BINTABLE HDU
//! after an empty primary HDU, with `TUNITn`, `TCOMMn` (the description) and `TUCDn` from the columns' metadata.
//!
//! A FITS header states the row count and the width of every string column before the rows, which are known only at the
//! end: the batches are spooled to a temporary Arrow IPC file meanwhile, and the file is written from it when the query
//! is done, a batch at a time (memory stays at one batch). Types: boolean `L`, int8 `B` (TZERO -128), uint8 `B`,
//! int16/32/64 `I`/`J`/`K`, uint16/32/64 the same with the unsigned TZERO, float32/64 `E`/`D`, strings `nA` (n the
//! longest, in bytes), fixed-size lists of these as repeat counts with `TDIM`. A null number is NaN, a null integer the
//! column's `TNULL` (the type's smallest value, or its largest where the smallest occurs), a null string or logical
//! empty. Other types (variable-length lists, structs, dates) are refused naming the column.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

const BLOCK: usize = 2880;

/// How one column is stored.
struct Column {
    name: String,
    /// The flat (leaf) type, strings as Utf8.
    leaf: DataType,
    /// Leaf values per row (1 for a scalar).
    repeat: usize,
    /// Axes of a fixed-size list, outermost first.
    shape: Vec<usize>,
    /// Longest string in bytes (strings only).
    width: usize,
    has_nulls: bool,
    /// Whether the integer type's smallest or largest value occurs: TNULL is the smallest unless it does.
    min_seen: bool,
    max_seen: bool,
}

impl Column {
    fn new(field: &Field) -> Result<Self, ArrowError> {
        let (mut leaf, mut shape) = (field.data_type().clone(), Vec::new());
        while let DataType::FixedSizeList(inner, n) = leaf {
            shape.push(n as usize);
            leaf = inner.data_type().clone();
        }
        let leaf = match leaf {
            DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
            DataType::Boolean | DataType::Utf8 | DataType::Float32 | DataType::Float64 => leaf,
            t if t.is_integer() => t,
            other => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "column '{}' ({other}) cannot be written to FITS: select it as numbers, strings or fixed-size lists of them",
                    field.name()
                )));
            }
        };
        Ok(Self { name: field.name().clone(), leaf, repeat: shape.iter().product(), shape, width: 0, has_nulls: false, min_seen: false, max_seen: false })
    }

    /// Bytes of one stored value.
    fn size(&self) -> usize {
        match self.leaf {
            DataType::Boolean | DataType::Int8 | DataType::UInt8 => 1,
            DataType::Int16 | DataType::UInt16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 => 4,
            DataType::Utf8 => self.width.max(1),
            _ => 8,
        }
    }

    /// TFORM letter, TZERO, TNULL.
    fn form(&self) -> (char, Option<&'static str>, Option<&'static str>) {
        let null = |min, max| self.has_nulls.then_some(if self.min_seen { max } else { min });
        match self.leaf {
            DataType::Boolean => ('L', None, None),
            DataType::Int8 => ('B', Some("-128"), null("0", "255")),
            DataType::UInt8 => ('B', None, null("0", "255")),
            DataType::Int16 => ('I', None, null("-32768", "32767")),
            DataType::UInt16 => ('I', Some("32768"), null("-32768", "32767")),
            DataType::Int32 => ('J', None, null("-2147483648", "2147483647")),
            DataType::UInt32 => ('J', Some("2147483648"), null("-2147483648", "2147483647")),
            DataType::Int64 => ('K', None, null("-9223372036854775808", "9223372036854775807")),
            DataType::UInt64 => ('K', Some("9223372036854775808"), null("-9223372036854775808", "9223372036854775807")),
            DataType::Float32 => ('E', None, None),
            DataType::Float64 => ('D', None, None),
            _ => ('A', None, None),
        }
    }

    /// The integer type's smallest and largest values (as doubles: a value rounding to one counts as it).
    fn extremes(&self) -> (f64, f64) {
        match self.leaf {
            DataType::Int8 => (-128.0, 127.0),
            DataType::UInt8 => (0.0, 255.0),
            DataType::Int16 => (i16::MIN as f64, i16::MAX as f64),
            DataType::UInt16 => (0.0, u16::MAX as f64),
            DataType::Int32 => (i32::MIN as f64, i32::MAX as f64),
            DataType::UInt32 => (0.0, u32::MAX as f64),
            DataType::Int64 => (i64::MIN as f64, i64::MAX as f64),
            _ => (0.0, u64::MAX as f64),
        }
    }
}

/// The leaf values of a (nested) fixed-size list column, or the column itself.
fn leaves(array: &ArrayRef) -> ArrayRef {
    match array.as_fixed_size_list_opt() {
        Some(list) => leaves(list.values()),
        None => Arc::clone(array),
    }
}

/// Batches spooled until the end of the query.
pub struct Spool {
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: u64,
    writer: StreamWriter<BufWriter<File>>,
}

impl Spool {
    pub fn new(schema: SchemaRef) -> Result<Self, ArrowError> {
        let columns = schema.fields().iter().map(|f| Column::new(f)).collect::<Result<Vec<_>, _>>()?;
        let file = tempfile::tempfile().map_err(|e| ArrowError::IoError(format!("a temporary file for the FITS rows: {e}"), e))?;
        let writer = StreamWriter::try_new(BufWriter::new(file), &schema)?;
        Ok(Self { schema, columns, rows: 0, writer })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        for (column, array) in self.columns.iter_mut().zip(batch.columns()) {
            let values = leaves(array);
            column.has_nulls |= values.null_count() > 0;
            if column.leaf.is_integer() && values.null_count() < values.len() {
                let doubles = cast(&values, &DataType::Float64)?;
                let doubles = doubles.as_primitive::<Float64Type>();
                let (min, max) = column.extremes();
                column.min_seen |= arrow::compute::min(doubles).is_some_and(|v| v <= min);
                column.max_seen |= arrow::compute::max(doubles).is_some_and(|v| v >= max);
            }
            if column.leaf == DataType::Utf8 {
                let strings = cast(&values, &DataType::Utf8)?;
                column.width = strings.as_string::<i32>().iter().flatten().map(str::len).fold(column.width, usize::max);
            }
        }
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch)
    }

    /// The header, then the rows a batch at a time, then the padding to a whole block.
    pub fn finish(mut self) -> Result<impl Iterator<Item = Result<Vec<u8>, ArrowError>> + Send, ArrowError> {
        if let Some(c) = self.columns.iter().find(|c| c.has_nulls && c.min_seen && c.max_seen) {
            return Err(ArrowError::InvalidArgumentError(format!(
                "column '{}' has nulls and both the smallest and the largest value of its type: FITS has no value left \
                 to mark its nulls with (TNULL); cast it to a wider type",
                c.name
            )));
        }
        self.writer.finish()?;
        let mut file = self.writer.into_inner()?.into_inner().map_err(|e| ArrowError::IoError(e.to_string(), e.into_error()))?;
        file.rewind()?;
        let reader = StreamReader::try_new(BufReader::new(file), None)?;
        let row_len: usize = self.columns.iter().map(|c| c.size() * c.repeat).sum();
        let header = header(&self.schema, &self.columns, row_len, self.rows);
        let padding = (row_len as u64 * self.rows).next_multiple_of(BLOCK as u64) - row_len as u64 * self.rows;
        let columns = self.columns;
        let rows = reader.map(move |batch| rows_bytes(&batch?, &columns, row_len));
        Ok(std::iter::once(Ok(header)).chain(rows).chain(std::iter::once(Ok(vec![0; padding as usize]))))
    }
}

/// A header card: `KEYWORD = value / comment`, cut to 80 characters.
fn card(keyword: &str, value: &str) -> String {
    let card = format!("{keyword:<8}= {value:>20}");
    format!("{:<80}", &card[..card.len().min(80)])
}

/// A string value (quotes doubled, printable ASCII only); longer ones go on in CONTINUE cards (the long-string
/// convention astropy and starflow's reader follow).
fn string_cards(keyword: &str, text: &str) -> String {
    // `KEYWORD = '` or `CONTINUE  '` (11 characters), up to 66 of quoted text, `&'`: within 80.
    let (mut pieces, mut piece) = (Vec::new(), String::new());
    for c in text.chars() {
        let quoted = match c {
            '\'' => "''".to_string(),
            ' '..='~' => c.to_string(),
            _ => "?".to_string(),
        };
        if piece.len() + quoted.len() > 66 {
            pieces.push(std::mem::take(&mut piece));
        }
        piece.push_str(&quoted);
    }
    pieces.push(piece);
    let mut cards = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let more = if i + 1 < pieces.len() { "&" } else { "" };
        let line = if i == 0 { format!("{keyword:<8}= '{piece}{more}'") } else { format!("CONTINUE  '{piece}{more}'") };
        cards.push_str(&format!("{line:<80}"));
    }
    cards
}

fn header(schema: &SchemaRef, columns: &[Column], row_len: usize, rows: u64) -> Vec<u8> {
    let mut text = [card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T"), format!("{:<80}", "END")]
        .concat();
    text.push_str(&" ".repeat(BLOCK - text.len()));
    let mut table = ["XTENSION= 'BINTABLE'".to_string(), card("BITPIX", "8"), card("NAXIS", "2")].map(|c| format!("{c:<80}")).concat();
    for (key, value) in [("NAXIS1", row_len as u64), ("NAXIS2", rows), ("PCOUNT", 0), ("GCOUNT", 1), ("TFIELDS", columns.len() as u64)] {
        table.push_str(&card(key, &value.to_string()));
    }
    for (n, (field, column)) in schema.fields().iter().zip(columns).enumerate().map(|(i, c)| (i + 1, c)) {
        let (letter, zero, null) = column.form();
        let count = if letter == 'A' { column.repeat * column.size() } else { column.repeat };
        table.push_str(&string_cards(&format!("TTYPE{n}"), field.name()));
        table.push_str(&string_cards(&format!("TFORM{n}"), &format!("{count}{letter}")));
        let mut axes: Vec<String> = column.shape.iter().rev().map(|d| d.to_string()).collect();
        if letter == 'A' && !column.shape.is_empty() {
            axes.insert(0, column.size().to_string());
        }
        if column.shape.len() > 1 || (letter == 'A' && !column.shape.is_empty()) {
            table.push_str(&string_cards(&format!("TDIM{n}"), &format!("({})", axes.join(","))));
        }
        if let Some(zero) = zero {
            table.push_str(&card(&format!("TSCAL{n}"), "1"));
            table.push_str(&card(&format!("TZERO{n}"), zero));
        }
        if let Some(null) = null {
            table.push_str(&card(&format!("TNULL{n}"), null));
        }
        for (key, meta) in [("TUNIT", "unit"), ("TCOMM", "description"), ("TUCD", "ucd")] {
            if let Some(value) = field.metadata().get(meta).filter(|v| !v.is_empty()) {
                table.push_str(&string_cards(&format!("{key}{n}"), value));
            }
        }
    }
    // What a StarFlow result depends on besides its inputs (Session::recorded_settings), as the Parquet files record it.
    let recorded = [("SFVERSN", "starflow_version"), ("SFSEED", "seed"), ("SFDRAWS", "draws"), ("SFLABREL", "label_release"), ("SFCNFLAG", "cn_flag")];
    for (key, meta) in recorded {
        if let Some(value) = schema.metadata().get(meta) {
            table.push_str(&string_cards(key, value));
        }
    }
    if let Some(description) = schema.metadata().get("description") {
        for line in description.chars().collect::<Vec<_>>().chunks(72) {
            table.push_str(&format!("{:<80}", format!("COMMENT {}", line.iter().map(|&c| if (' '..='~').contains(&c) { c } else { '?' }).collect::<String>())));
        }
    }
    table.push_str(&format!("{:<80}", "END"));
    text.push_str(&table);
    text.push_str(&" ".repeat(text.len().next_multiple_of(BLOCK) - text.len()));
    text.into_bytes()
}

/// Big-endian values of `array` (leaf values, `repeat` per row) into each row's field at `offset`.
fn put<const N: usize>(out: &mut [u8], row_len: usize, offset: usize, repeat: usize, values: impl Iterator<Item = [u8; N]>) {
    for (i, bytes) in values.enumerate() {
        let at = (i / repeat) * row_len + offset + (i % repeat) * N;
        out[at..at + N].copy_from_slice(&bytes);
    }
}

fn rows_bytes(batch: &RecordBatch, columns: &[Column], row_len: usize) -> Result<Vec<u8>, ArrowError> {
    let mut out = vec![0u8; batch.num_rows() * row_len];
    let mut offset = 0;
    for (column, array) in columns.iter().zip(batch.columns()) {
        let values = leaves(array);
        let (r, o) = (column.repeat, offset);
        // A null integer is stored as the TNULL of `form`: the type's smallest value, or its largest where the smallest
        // occurs.
        macro_rules! ints {
            ($t:ty, $min:expr, $max:expr, $store:expr) => {{
                let null = if column.min_seen { $max } else { $min };
                put(&mut out, row_len, o, r, values.as_primitive::<$t>().iter().map(|v| v.map_or(null, $store).to_be_bytes()))
            }};
        }
        match column.leaf {
            DataType::Boolean => put(&mut out, row_len, o, r, values.as_boolean().iter().map(|v| [v.map_or(0, |b| if b { b'T' } else { b'F' })])),
            DataType::Int8 => ints!(Int8Type, 0u8, 255u8, |v: i8| (v as u8) ^ 0x80),
            DataType::UInt8 => ints!(UInt8Type, 0u8, 255u8, |v: u8| v),
            DataType::Int16 => ints!(Int16Type, i16::MIN, i16::MAX, |v: i16| v),
            DataType::UInt16 => ints!(UInt16Type, i16::MIN, i16::MAX, |v: u16| (v ^ 0x8000) as i16),
            DataType::Int32 => ints!(Int32Type, i32::MIN, i32::MAX, |v: i32| v),
            DataType::UInt32 => ints!(UInt32Type, i32::MIN, i32::MAX, |v: u32| (v ^ (1 << 31)) as i32),
            DataType::Int64 => ints!(Int64Type, i64::MIN, i64::MAX, |v: i64| v),
            DataType::UInt64 => ints!(UInt64Type, i64::MIN, i64::MAX, |v: u64| (v ^ (1 << 63)) as i64),
            DataType::Float32 => put(&mut out, row_len, o, r, values.as_primitive::<Float32Type>().iter().map(|v| v.unwrap_or(f32::NAN).to_be_bytes())),
            DataType::Float64 => put(&mut out, row_len, o, r, values.as_primitive::<Float64Type>().iter().map(|v| v.unwrap_or(f64::NAN).to_be_bytes())),
            _ => {
                let strings = cast(&values, &DataType::Utf8)?;
                let width = column.size();
                for (i, s) in strings.as_string::<i32>().iter().enumerate() {
                    let at = (i / r) * row_len + o + (i % r) * width;
                    let bytes = s.unwrap_or_default().as_bytes();
                    out[at..at + bytes.len()].copy_from_slice(bytes);
                    out[at + bytes.len()..at + width].fill(b' ');
                }
            }
        }
        offset += column.size() * column.repeat;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_go_on_in_continue_cards_of_80_characters() {
        let text = format!("{}'s {} é", "a".repeat(70), "'".repeat(50));
        let cards = string_cards("TCOMM1", &text);
        assert_eq!(cards.len() % 80, 0);
        let lines: Vec<&str> = cards.as_bytes().chunks(80).map(|c| std::str::from_utf8(c).unwrap()).collect();
        assert!(lines[0].starts_with("TCOMM1  = 'aaa") && lines[1..].iter().all(|l| l.starts_with("CONTINUE  '")), "{lines:?}");
        // The pieces, unquoted and joined, are the text (non-ASCII as '?').
        let joined: String = lines
            .iter()
            .map(|l| l[l.find('\'').unwrap() + 1..l.trim_end().len() - 1].trim_end_matches('&').replace("''", "'"))
            .collect();
        assert_eq!(joined, text.replace('é', "?"));
        assert_eq!(string_cards("TUNIT1", ""), format!("{:<80}", "TUNIT1  = ''"));
    }
}
