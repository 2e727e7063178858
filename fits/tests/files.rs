//! The reader against FITS files written by astropy (every TFORM, scaling and null convention, several HDUs, gzip),
//! real APOGEE-era survey files, and broken files (truncated, lying headers, not FITS): values, types, metadata,
//! errors. The astropy files are made once per run by `tests/data/fits/make_fits.py` in the scripts' venv.

use std::path::Path;
use std::sync::OnceLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use datafusion::error::DataFusionError;
use datafusion::arrow::compute::cast;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use serde_json::{Value, json};

mod common;

use common::{make_fits, query, repo};

/// The astropy-written files, made once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| make_fits(&[])).path()
}

fn context(partitions: usize) -> SessionContext {
    common::context(partitions, 3)
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}

fn float(v: f64) -> Value {
    if v.is_nan() {
        json!("nan")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(v)
    }
}

/// One value as make_fits.py's types.json holds it.
fn to_json(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            json!(array.as_primitive::<$t>().value(row))
        };
    }
    match array.data_type() {
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Struct(_) => {
            let s = array.as_struct();
            json!({"re": to_json(s.column(0), row), "im": to_json(s.column(1), row)})
        }
        DataType::FixedSizeList(..) => {
            let values = array.as_fixed_size_list().value(row);
            Value::Array((0..values.len()).map(|i| to_json(&values, i)).collect())
        }
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            Value::Array((0..values.len()).map(|i| to_json(&values, i)).collect())
        }
        other => panic!("unexpected type {other}"),
    }
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("types.json")).unwrap()).unwrap()
}

fn check_columns(batch: &RecordBatch, expected: &Value, skip_var_len: bool) {
    let columns = expected["columns"].as_object().unwrap();
    let mut checked = 0;
    for (name, values) in columns {
        if skip_var_len && name.starts_with("var_") {
            continue;
        }
        let array = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        let got: Vec<Value> = (0..batch.num_rows()).map(|r| to_json(array, r)).collect();
        assert_eq!(&Value::Array(got), values, "column {name} ({})", array.data_type());
        checked += 1;
    }
    assert!(checked >= 22, "{checked} columns compared");
}

#[tokio::test]
async fn every_tform_reads_as_astropy_wrote_it() {
    let expected = expected();
    for partitions in [1, 4] {
        let ctx = context(partitions);
        let path = fixtures().join("types.fits").display().to_string();
        let batches = query(&ctx, &format!("SELECT * FROM '{path}'")).await.unwrap();
        let batch = concat(&batches);
        assert_eq!(batch.num_rows(), 5);
        check_columns(&batch, &expected, false);

        let schema = batch.schema();
        let types: Vec<(&str, String)> = ["sbyte", "ushort", "uint", "ulong", "scaled", "scaled_real", "grid", "words", "cplx", "var_int", "var_text", "bits"]
            .iter()
            .map(|n| (*n, schema.field_with_name(n).unwrap().data_type().to_string()))
            .collect();
        assert_eq!(types, vec![
            ("sbyte", "Int8".to_string()),
            ("ushort", "UInt16".to_string()),
            ("uint", "UInt32".to_string()),
            ("ulong", "UInt64".to_string()),
            ("scaled", "Float64".to_string()),
            ("scaled_real", "Float64".to_string()),
            ("grid", "FixedSizeList(2 x FixedSizeList(3 x Float32))".to_string()),
            ("words", "FixedSizeList(3 x Utf8)".to_string()),
            ("cplx", "Struct(\"re\": Float32, \"im\": Float32)".to_string()),
            ("var_int", "List(Int32)".to_string()),
            ("var_text", "Utf8".to_string()),
            ("bits", "FixedSizeList(11 x Boolean)".to_string()),
        ]);
        for (name, key) in [("real", "unit"), ("double", "unit"), ("real", "description"), ("double", "description")] {
            let want = &expected[if key == "unit" { "units" } else { "descriptions" }][name];
            assert_eq!(schema.field_with_name(name).unwrap().metadata().get(key).map(|s| json!(s)).as_ref(), Some(want));
        }
    }
}

#[tokio::test]
async fn gzipped_files_stream_and_refuse_only_heap_columns() {
    let expected = expected();
    let ctx = context(4);
    let gz = fixtures().join("types.fits.gz").display().to_string();
    let columns: Vec<String> = expected["columns"].as_object().unwrap().keys().filter(|k| !k.starts_with("var_")).map(|k| format!("\"{k}\"")).collect();
    let batches = query(&ctx, &format!("SELECT {} FROM '{gz}'", columns.join(", "))).await.unwrap();
    check_columns(&concat(&batches), &expected, true);

    let err = query(&ctx, &format!("SELECT var_int FROM '{gz}'")).await.unwrap_err().to_string();
    assert!(err.contains("types.fits.gz") && err.contains("'var_int' is a variable-length array"), "{err}");
    // A gzipped file whose name does not say so is recognised by its magic bytes.
    let hidden = fixtures().join("gzip-inside.fits");
    std::fs::copy(fixtures().join("types.fits.gz"), &hidden).unwrap();
    let batches = query(&ctx, &format!("SELECT ulong, name FROM '{}'", hidden.display())).await.unwrap();
    assert_eq!(concat(&batches).num_rows(), 5);
}

#[tokio::test]
async fn hdus_are_chosen_by_index_or_name() {
    let ctx = context(1);
    let path = fixtures().join("hdus.fits").display().to_string();
    let sum = |batches: Vec<RecordBatch>| format!("{:?}", concat(&batches).columns());
    let first = query(&ctx, &format!("SELECT sum(a) AS s FROM '{path}'")).await.unwrap();
    assert!(sum(first).contains("3"), "the first BINTABLE is HDU 2 ('FIRST')");
    for (option, rows) in [("3", 3), ("second", 3), ("FIRST", 2)] {
        ctx.sql(&format!("CREATE OR REPLACE EXTERNAL TABLE t STORED AS FITS LOCATION '{path}' OPTIONS ('hdu' '{option}')")).await.unwrap();
        let batches = query(&ctx, "SELECT count(*) FROM t").await.unwrap();
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), rows, "hdu {option}");
    }
    for (option, message) in [("1", "HDU 1 is not a binary table"), ("9", "no HDU 9: the file has 4"), ("NOPE", "no HDU named 'NOPE'")] {
        let err = ctx
            .sql(&format!("CREATE OR REPLACE EXTERNAL TABLE t STORED AS FITS LOCATION '{path}' OPTIONS ('hdu' '{option}')"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(message) && err.contains("hdus.fits"), "{err}");
    }
    let err = ctx.sql(&format!("CREATE EXTERNAL TABLE u STORED AS FITS LOCATION '{path}' OPTIONS ('rows' '3')")).await.unwrap_err();
    assert!(err.to_string().contains("unknown FITS table option 'rows'"), "{err}");
}

/// Every value of a column as a double (integers exactly), a null as NaN: FITS NaN and an empty CSV field agree.
fn doubles(array: &ArrayRef) -> Vec<u64> {
    let doubles = cast(array, &DataType::Float64).unwrap();
    doubles.as_primitive::<Float64Type>().iter().map(|v| v.unwrap_or(f64::NAN)).map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() }).collect()
}

fn texts(array: &ArrayRef) -> Vec<Option<String>> {
    let texts = cast(array, &DataType::Utf8).unwrap();
    texts.as_string::<i32>().iter().map(|s| s.map(String::from)).collect()
}

#[tokio::test]
async fn real_survey_files_read_completely() {
    let ctx = context(2);
    // The OCCAM DR16 files (Donor et al. 2020) and their CSV conversions (data/reference/occam): every value the same,
    // the doubles bit for bit, in file order (one partition keeps it).
    let ordered = context(1);
    for name in ["occam_cluster-DR16", "occam_member-DR16"] {
        let dir = repo().join("data/reference/occam");
        let fits = concat(&query(&ordered, &format!("SELECT * FROM '{}'", dir.join(format!("{name}.fits")).display())).await.unwrap());
        let csv = ordered.read_csv(dir.join(format!("{name}.csv")).display().to_string(), CsvReadOptions::new()).await.unwrap();
        let csv = concat(&csv.collect().await.unwrap());
        assert_eq!((fits.num_rows(), fits.num_columns()), (csv.num_rows(), csv.num_columns()), "{name}");
        assert!(csv.num_rows() >= 126);
        for (field, values) in csv.schema().fields().iter().zip(csv.columns()) {
            let read = fits.column_by_name(field.name()).unwrap_or_else(|| panic!("{name}: no column {}", field.name()));
            match field.data_type() {
                DataType::Utf8 | DataType::Utf8View => assert_eq!(texts(read), texts(values), "{name}.{}", field.name()),
                _ => assert_eq!(doubles(read), doubles(values), "{name}.{}", field.name()),
            }
        }
    }
    // Aggregates as astropy 8.0.2 computes them (tests/data/fits/README.md): 7943 members with [Fe/H], 126 clusters.
    let occam = repo().join("data/reference/occam/occam_member-DR16.fits").display().to_string();
    let batches = query(&ctx, &format!(
        "SELECT count(*), count(DISTINCT \"CLUSTER\"), min(\"APOGEE_ID\"), round(sum(\"FE_H\"), 3) FROM '{occam}' WHERE \"FE_H\" > -9999"
    ))
    .await
    .unwrap();
    let row: Vec<Value> = batches[0].columns().iter().map(|c| to_json(c, 0)).collect();
    assert_eq!(row, vec![json!(7943), json!(126), json!("2M00201297+8516300"), json!(-1254.52)]);
    // APOKASC v7.0.5 ages: 11,823 stars.
    let apokasc = repo().join("tests/data/fits/APOKASC705_AGE_short.fits").display().to_string();
    let batches = query(&ctx, &format!("SELECT count(*), min(\"APOGEE_ID\"), max(\"AGE_JT\") FROM '{apokasc}'")).await.unwrap();
    let row: Vec<Value> = batches[0].columns().iter().map(|c| to_json(c, 0)).collect();
    assert_eq!(row, vec![json!(11823), json!("2M18401164+4324434"), json!(79.68f32 as f64)]);
}

async fn read_all(path: &Path) -> Result<Vec<RecordBatch>, DataFusionError> {
    let ctx = context(2);
    let table = path.display().to_string();
    let mut out = query(&ctx, &format!("SELECT * FROM '{table}'")).await?;
    out.extend(query(&ctx, &format!("SELECT count(*) FROM '{table}'")).await?);
    Ok(out)
}

/// Overwrite the card `keyword` (which must exist) with `new_keyword = value`.
fn set_card(bytes: &mut [u8], keyword: &str, new_keyword: &str, value: &str) {
    let key = format!("{keyword:<8}= ");
    let at = bytes.windows(10).position(|w| w == key.as_bytes()).unwrap_or_else(|| panic!("no {keyword}"));
    let card = format!("{new_keyword:<8}= {value:>20}");
    bytes[at..at + 80].copy_from_slice(format!("{card:<80}").as_bytes());
}

#[tokio::test]
async fn broken_files_are_errors_that_name_the_file() {
    let good = std::fs::read(fixtures().join("types.fits")).unwrap();
    let gz = std::fs::read(fixtures().join("types.fits.gz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // DataFusion does not hand a 0-byte file to the reader (its name is not known there).
        ("empty.fits", vec![], "every file there is empty"),
        ("text.fits", b"sdss_id,teff\n1,4500\n".repeat(400), "not a FITS file"),
        ("truncated-data.fits", good[..good.len() - 3000].to_vec(), "truncated"),
        ("truncated-header.fits", good[..4000].to_vec(), "truncated"),
        ("gzip-early.fits.gz", gz[..gz.len() / 2].to_vec(), "cannot decompress"),
        ("gzip-garbage.fits.gz", [&gz[..10], &[0xff; 200][..]].concat(), "cannot decompress"),
    ];
    let mut lie = |keyword: &str, value: &str, name: &'static str, message: &'static str| {
        let mut bytes = good.clone();
        // astropy writes no THEAP: it takes the place of EXTNAME.
        set_card(&mut bytes, if keyword == "THEAP" { "EXTNAME" } else { keyword }, keyword, value);
        cases.push((name, bytes, message));
    };
    lie("NAXIS2", "500", "naxis2.fits", "truncated");
    // Rows and heap that just fit in u64 bytes, but not after the 11,520 bytes of headers.
    lie("NAXIS2", "85008037206034799", "naxis2-end.fits", "truncated");
    lie("NAXIS1", "218", "naxis1.fits", "the TFORMs add up to 217 bytes per row, but NAXIS1 = 218");
    lie("TFORM3", "'J       '", "tform.fits", "the TFORMs add up to");
    lie("TFORM3", "'Z       '", "tform-letter.fits", "TFORM 'Z' is not a binary-table format");
    lie("BITPIX", "12", "bitpix.fits", "BITPIX = 12");
    lie("PCOUNT", "99999999", "pcount.fits", "truncated");
    lie("THEAP", "1", "theap.fits", "THEAP points outside the data");
    for (name, bytes, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = match read_all(&path).await {
            Ok(batches) => panic!("{name}: expected an error, got {} rows", batches.iter().map(|b| b.num_rows()).sum::<usize>()),
            Err(e) => e.to_string(),
        };
        assert!((err.contains(name) || name == "empty.fits") && err.contains(message), "{name}: expected '{message}' in: {err}");
        assert!(!err.contains('\n'), "{name}: one line: {err}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn runner(cases: u32) -> TestRunner {
        TestRunner::new(Config { cases, rng_seed: proptest::test_runner::RngSeed::Fixed(15), ..Config::default() })
    }

    /// Any corruption of the header or the data is an error or a table, never a panic.
    #[test]
    fn corrupted_bytes_are_errors_or_tables() {
        let good = std::fs::read(fixtures().join("types.fits")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let edits = prop::collection::vec((0..good.len(), any::<u8>()), 1..8);
        runner(128)
            .run(&edits, |edits| {
                let mut bytes = good.clone();
                for (at, byte) in edits {
                    bytes[at] = byte;
                }
                let path = dir.path().join("mutant.fits");
                std::fs::write(&path, &bytes).unwrap();
                if let Err(e) = rt.block_on(read_all(&path)) {
                    prop_assert!(e.to_string().contains("mutant.fits"), "the error names the file: {e}");
                }
                Ok(())
            })
            .unwrap();
    }

    /// A file cut anywhere before the end of its data is an error, never a shorter table; plain and gzipped.
    #[test]
    fn cut_files_are_errors() {
        let good = std::fs::read(fixtures().join("types.fits")).unwrap();
        let gz = std::fs::read(fixtures().join("types.fits.gz")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        // The data lie in the last block: every cut before it loses some.
        runner(64)
            .run(&(0..good.len() - 2880, 0..gz.len() - 8), |(cut, gz_cut)| {
                for (name, bytes) in [("cut.fits", &good[..cut]), ("cut.fits.gz", &gz[..gz_cut])] {
                    let path = dir.path().join(name);
                    std::fs::write(&path, bytes).unwrap();
                    let result = rt.block_on(read_all(&path));
                    prop_assert!(result.is_err(), "{name} cut to {} bytes read as a table", bytes.len());
                }
                Ok(())
            })
            .unwrap();
    }
}
