//! Reading a row range of one table in record batches: only the bytes of the needed fields (whole rows unless rows
//! are so wide that skipping pays), in chunks of a few MiB, decoded a batch at a time.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;

use crate::decode::{Rows, decode, decode_var, heap_ranges};
use crate::fits_error;
use crate::input::Input;
use crate::table::Table;

/// Bytes fetched per request: large enough that object-store latency does not dominate, small enough to bound memory.
const CHUNK_BYTES: usize = 8 << 20;
/// Per-row gap that makes separate ranges per row worth it: object_store merges ranges closer than 1 MiB anyway.
const SPARSE_GAP: usize = 1 << 20;

pub struct Scan {
    input: Input,
    table: Table,
    schema: SchemaRef,
    /// For each output field, the table column it comes from (None: not in this file, all null).
    columns: Vec<Option<usize>>,
    /// The bytes of each row that hold the needed fields.
    span: Range<usize>,
    rows: Range<u64>,
    batch_size: usize,
    chunk: Option<(Bytes, u64, usize)>,
}

impl Scan {
    /// `rows` of `table`, as `schema` (the projected table schema: fields by name, cast to the table's types).
    pub fn new(input: Input, table: Table, schema: SchemaRef, rows: Range<u64>, batch_size: usize) -> Result<Self> {
        input.check_complete(&table)?;
        let columns: Vec<Option<usize>> =
            schema.fields().iter().map(|f| table.columns.iter().position(|c| c.name == *f.name())).collect();
        let used = columns.iter().flatten().map(|&i| &table.columns[i]);
        let span = used.clone().map(|c| c.offset).min().unwrap_or(0)..used.clone().map(|c| c.offset + c.width()).max().unwrap_or(0);
        let var_len = used.clone().find(|c| c.var_len.is_some());
        if let (Some(column), false) = (var_len, input.is_ranged()) {
            return Err(fits_error(&input.name, format!(
                "column '{}' is a variable-length array (TFORM {}), which a compressed file cannot be streamed for: \
                 decompress the file, or leave the column out",
                column.name, column.tform
            )));
        }
        // A stream must be read through every row to prove they are all there, even when no field is decoded.
        let span = if span.is_empty() && !input.is_ranged() { 0..table.row_len } else { span };
        Ok(Self { input, table, schema, columns, span, rows, batch_size: batch_size.max(1), chunk: None })
    }

    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some((bytes, first, count)) = self.next_rows().await? else { return self.finish().await };
        let stride = self.span.len();
        let rows = Rows::new(&bytes, count, stride, self.span.start).map_err(|e| fits_error(&self.input.name, e))?;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let name = self.input.name.clone();
        for (field, column) in self.schema.fields().iter().zip(&self.columns) {
            let Some(&index) = column.as_ref() else {
                arrays.push(new_null_array(field.data_type(), count));
                continue;
            };
            let column = &self.table.columns[index];
            let context = |e: String| fits_error(&name, format!("rows {}-{}: {e}", first + 1, first + count as u64));
            let array = match column.var_len {
                None => decode(column, &rows).map_err(context)?,
                Some(_) => {
                    let ranges = heap_ranges(column, &rows, self.table.heap_size()).map_err(context)?;
                    let base = self.table.hdu.data_offset + self.table.heap_offset;
                    let absolute: Vec<Range<u64>> = ranges.iter().map(|(r, _)| base + r.start..base + r.end).collect();
                    let fetched = self.input.read_ranges(&absolute).await?;
                    let arrays: Vec<(&[u8], usize)> = fetched.iter().zip(&ranges).map(|(b, (_, n))| (b.as_ref(), *n)).collect();
                    decode_var(column, &arrays).map_err(context)?
                }
            };
            let array = if array.data_type() == field.data_type() { array } else { cast(&array, field.data_type())? };
            arrays.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(Some(RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options)?))
    }

    /// The next batch of rows: their needed bytes, first row, count.
    async fn next_rows(&mut self) -> Result<Option<(Bytes, u64, usize)>> {
        if self.chunk.as_ref().is_none_or(|(_, _, n)| *n == 0) {
            if self.rows.is_empty() {
                return Ok(None);
            }
            self.chunk = Some(self.read_chunk().await?);
        }
        let Some((bytes, first, left)) = self.chunk.as_mut() else { return Ok(None) };
        let count = self.batch_size.min(*left);
        let batch = bytes.split_to(count * self.span.len());
        let start = *first;
        *first += count as u64;
        *left -= count;
        Ok(Some((batch, start, count)))
    }

    /// Fetch the needed bytes of the next rows, a few MiB at a time.
    async fn read_chunk(&mut self) -> Result<(Bytes, u64, usize)> {
        let (row_len, stride) = (self.table.row_len, self.span.len());
        // Separate ranges per row only when the bytes between them are too many to read through.
        let contiguous = stride == row_len || row_len - stride < SPARSE_GAP || !self.input.is_ranged();
        let fetched_per_row = if contiguous { row_len } else { stride };
        // Wide rows make chunks of fewer rows (and batches of at most a chunk's rows), never chunks of more bytes.
        let rows_per_chunk = (CHUNK_BYTES / fetched_per_row.max(1)).max(1) as u64;
        let first = self.rows.start;
        let count = rows_per_chunk.min(self.rows.end - first);
        self.rows.start += count;
        let count = count as usize;
        let row_offset = |r: u64| self.table.hdu.data_offset + r * row_len as u64;
        if stride == 0 {
            return Ok((Bytes::new(), first, count));
        }
        let bytes = if contiguous {
            // One read from the first needed byte of the first row to the last of the last row.
            let start = row_offset(first) + self.span.start as u64;
            let whole = self.input.read(start, (count - 1) * row_len + stride).await?;
            if stride == row_len {
                whole
            } else {
                let mut packed = BytesMut::with_capacity(count * stride);
                (0..count).for_each(|r| packed.extend_from_slice(&whole[r * row_len..r * row_len + stride]));
                packed.freeze()
            }
        } else {
            let lo = self.span.start as u64;
            let ranges: Vec<Range<u64>> =
                (first..first + count as u64).map(|r| row_offset(r) + lo..row_offset(r) + lo + stride as u64).collect();
            let mut packed = BytesMut::with_capacity(count * stride);
            self.input.read_ranges(&ranges).await?.iter().for_each(|b| packed.extend_from_slice(b));
            packed.freeze()
        };
        Ok((bytes, first, count))
    }

    /// After the last row, a stream is read to its end: a compressed file cut short after the rows (in the heap, a
    /// later HDU or the gzip trailer) is an error too, not a silently complete table.
    async fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.input.drain().await?;
        Ok(None)
    }
}
