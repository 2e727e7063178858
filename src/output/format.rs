//! Encoders turning record batches into the bytes of one output format, batch by batch.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch};
use arrow::datatypes::{DataType, FieldRef, Float16Type, Float32Type, Float64Type, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::writer::{EncoderOptions, NullableEncoder};
use arrow::json::{EncoderFactory, WriterBuilder};
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::arrow::{ARROW_SCHEMA_META_KEY, ArrowWriter, encode_arrow_schema};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;

use super::votable::Described;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table (terminal display; long results are cut at --max-rows).
    Table,
    Csv,
    /// One JSON array of row objects (NaN and infinities as the strings "NaN", "Infinity", "-Infinity").
    Json,
    /// One JSON object per line (NaN and infinities as for json).
    Ndjson,
    Parquet,
    /// A FITS binary table with the columns' units and descriptions.
    Fits,
}

impl OutputFormat {
    /// The format a file name implies, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, ext)| ext)?;
        match ext {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "parquet" | "parq" => Some(Self::Parquet),
            "fits" | "fit" | "fts" => Some(Self::Fits),
            "txt" => Some(Self::Table),
            _ => None,
        }
    }
}

/// Rows per Parquet row group: a row group is held in memory until complete, so wide files (the 250-column posteriors)
/// get short ones, ~64 MiB of 8-byte values each.
fn row_group_rows(schema: &SchemaRef) -> usize {
    ((64 << 20) / (8 * schema.fields().len().max(1))).clamp(4096, 1 << 20)
}

/// A `Write` target whose bytes can be taken out after each batch, so that synchronous arrow writers can feed an
/// asynchronous sink without holding the whole output in memory.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// JSON has no NaN or infinity, and arrow writes them as null: a NaN input would come out as a missing value. They
/// are written as the strings "NaN", "Infinity" and "-Infinity" (the convention of Protocol Buffers' JSON mapping,
/// read back by Python's `float()`), finite numbers as numbers.
fn json() -> WriterBuilder {
    WriterBuilder::new().with_encoder_factory(Arc::new(NonFiniteAsText))
}

#[derive(Debug)]
struct NonFiniteAsText;

impl EncoderFactory for NonFiniteAsText {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder: Box<dyn arrow::json::Encoder + 'a> = match array.data_type() {
            DataType::Float16 => Box::new(Floats(array.as_primitive::<Float16Type>(), |v| v.to_f64())),
            DataType::Float32 => Box::new(Floats(array.as_primitive::<Float32Type>(), f64::from)),
            DataType::Float64 => Box::new(Floats(array.as_primitive::<Float64Type>(), |v| v)),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.logical_nulls())))
    }
}

/// Floats of one array, with their value as a double (to tell the finite ones).
struct Floats<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>, fn(T::Native) -> f64);

impl<T: ArrowPrimitiveType> arrow::json::Encoder for Floats<'_, T> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = self.0.value(idx);
        let text = match (self.1)(value) {
            v if v.is_nan() => "\"NaN\"".to_string(),
            v if v == f64::INFINITY => "\"Infinity\"".to_string(),
            v if v == f64::NEG_INFINITY => "\"-Infinity\"".to_string(),
            // Debug is the shortest text that reads back to the same value, with an exponent where it is shorter.
            _ => format!("{value:?}"),
        };
        out.extend_from_slice(text.as_bytes());
    }
}

enum Writer {
    Csv(arrow::csv::Writer<SharedBuf>),
    Json(arrow::json::ArrayWriter<SharedBuf>),
    Ndjson(arrow::json::LineDelimitedWriter<SharedBuf>),
    Parquet(ArrowWriter<SharedBuf>, Described),
    Fits(super::fits::Spool),
}

/// Encodes a stream of batches of one schema (not the table format, which needs to see rows to align them).
pub struct Encoder {
    buf: SharedBuf,
    writer: Writer,
}

impl Encoder {
    pub fn new(format: OutputFormat, schema: SchemaRef) -> Result<Self, ArrowError> {
        let buf = SharedBuf::default();
        let writer = match format {
            OutputFormat::Csv => Writer::Csv(arrow::csv::WriterBuilder::new().with_header(true).build(buf.clone())),
            OutputFormat::Json => Writer::Json(json().build(buf.clone())),
            OutputFormat::Ndjson => Writer::Ndjson(json().build(buf.clone())),
            OutputFormat::Parquet => {
                // The metadata (descriptions, provenance, units as astropy and VO tools read them) and the Arrow schema
                // holding it are written at the end, when the string lengths astropy needs are known.
                let props = WriterProperties::builder()
                    .set_max_row_group_row_count(Some(row_group_rows(&schema)))
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let options = ArrowWriterOptions::new().with_properties(props).with_skip_arrow_metadata(true);
                let described = Described::new(Arc::clone(&schema));
                let writer = ArrowWriter::try_new_with_options(buf.clone(), schema, options).map_err(ArrowError::from)?;
                Writer::Parquet(writer, described)
            }
            OutputFormat::Fits => Writer::Fits(super::fits::Spool::new(schema)?),
            OutputFormat::Table => return Err(ArrowError::InvalidArgumentError("table is not a streaming format".into())),
        };
        Ok(Self { buf, writer })
    }

    /// Encode one batch; returns the bytes that are ready (possibly none: Parquet emits whole row groups).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        match &mut self.writer {
            Writer::Csv(w) => w.write(batch)?,
            Writer::Json(w) => w.write(batch)?,
            Writer::Ndjson(w) => w.write(batch)?,
            Writer::Parquet(w, described) => {
                described.observe(batch);
                w.write(batch).map_err(ArrowError::from)?
            }
            Writer::Fits(spool) => spool.write(batch)?,
        }
        Ok(self.buf.take())
    }

    /// Finish the format (closing bracket, Parquet footer, a FITS file's header and rows) and return the remaining
    /// bytes, in pieces of bounded size.
    pub fn finish(self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>, ArrowError>> + Send>, ArrowError> {
        match self.writer {
            Writer::Csv(_) => {}
            Writer::Json(mut w) => w.finish()?,
            Writer::Ndjson(mut w) => w.finish()?,
            Writer::Parquet(mut w, described) => {
                // Plain key-values for non-Arrow readers, and the Arrow schema (types, field metadata, the same keys).
                let schema = described.schema();
                schema.metadata().iter().for_each(|(k, v)| w.append_key_value_metadata(KeyValue::new(k.clone(), v.clone())));
                w.append_key_value_metadata(KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), encode_arrow_schema(&schema)));
                w.close().map_err(ArrowError::from)?;
            }
            Writer::Fits(spool) => return Ok(Box::new(spool.finish()?)),
        }
        Ok(Box::new(std::iter::once(Ok(self.buf.take()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batches() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("age", DataType::Float64, true),
        ]));
        let b1 = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(Float64Array::from(vec![Some(4.5), None]))],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![3])), Arc::new(Float64Array::from(vec![Some(10.25)]))],
        )
        .unwrap();
        (schema, vec![b1, b2])
    }

    fn encode(format: OutputFormat) -> Vec<u8> {
        let (schema, batches) = batches();
        let mut enc = Encoder::new(format, schema).unwrap();
        let mut out = Vec::new();
        for b in &batches {
            out.extend(enc.write(b).unwrap());
        }
        enc.finish().unwrap().for_each(|piece| out.extend(piece.unwrap()));
        out
    }

    #[test]
    fn text_formats_stream_across_batches() {
        assert_eq!(String::from_utf8(encode(OutputFormat::Csv)).unwrap(), "id,age\n1,4.5\n2,\n3,10.25\n");
        assert_eq!(
            String::from_utf8(encode(OutputFormat::Ndjson)).unwrap(),
            "{\"id\":1,\"age\":4.5}\n{\"id\":2}\n{\"id\":3,\"age\":10.25}\n"
        );
        let json: serde_json::Value = serde_json::from_slice(&encode(OutputFormat::Json)).unwrap();
        assert_eq!(json, serde_json::json!([{"id":1,"age":4.5},{"id":2},{"id":3,"age":10.25}]));
    }

    #[test]
    fn json_writes_non_finite_numbers_as_text() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true), Field::new("y", DataType::Float32, true)]));
        let x = Float64Array::from(vec![Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(0.1), None, Some(1e300)]);
        let y = arrow::array::Float32Array::from(vec![Some(0.1f32), Some(f32::NAN), None, Some(-0.0), Some(1.5), Some(f32::MAX)]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(x), Arc::new(y)]).unwrap();
        let mut enc = Encoder::new(OutputFormat::Ndjson, schema).unwrap();
        let mut out = enc.write(&batch).unwrap();
        enc.finish().unwrap().for_each(|piece| out.extend(piece.unwrap()));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"x\":\"NaN\",\"y\":0.1}\n{\"x\":\"Infinity\",\"y\":\"NaN\"}\n{\"x\":\"-Infinity\"}\n{\"x\":0.1,\"y\":-0.0}\n\
             {\"y\":1.5}\n{\"x\":1e300,\"y\":3.4028235e38}\n"
        );
    }

    #[test]
    fn parquet_round_trips() {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let bytes = bytes::Bytes::from(encode(OutputFormat::Parquet));
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        // The Arrow schema stored at the end holds the astropy and VOParquet keys (pyarrow reads them from there).
        let metadata = builder.schema().metadata();
        assert!(metadata["table_meta_yaml"].contains(r#""name":"age""#) && metadata.contains_key("IVOA.VOTable-Parquet.content"));
        let reader = builder.build().unwrap();
        let read: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let rows: usize = read.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 3);
        let ages = read[0].column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(ages.value(0), 4.5);
        assert!(ages.is_null(1));
    }

    #[test]
    fn formats_from_file_names() {
        assert_eq!(OutputFormat::from_path("s3://b/out/summary.PARQUET"), Some(OutputFormat::Parquet));
        assert_eq!(OutputFormat::from_path("x.jsonl"), Some(OutputFormat::Ndjson));
        assert_eq!(OutputFormat::from_path("/tmp/dir.d/noext"), None);
    }
}
