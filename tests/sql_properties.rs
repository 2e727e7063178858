//! The StarFlow functions through SQL and the readers: any table of numbers gives, row for row, exactly what
//! `estimate_batch` gives for the same numbers as doubles (whose outcomes udfs/tests/properties.rs pins down), whatever
//! the column types (float32/float64, integers, decimals, dictionary-encoded), nulls, NaN, infinities, literal
//! arguments, batch boundaries (empty batches included) and partitions; never an error for the query. Dictionary-encoded
//! Parquet columns read as their values; numbers stored as text are a plan error that says how to CAST them.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{bundled_catalogue, properties, read_parquet, starflow, stdout_of};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use starflow::engine::{Engine, EngineOptions};
use starflow_udfs::StarflowConfig;
use starflow_udfs::inference::{Options, StarInput, estimate_batch};
use starflow_udfs::posterior::Estimate;

const ARGS: &str = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe";
/// Draws per star in the property cases: few, so that they are cheap (the math does not depend on the count).
const DRAWS: usize = 6;

fn gaussian_dir() -> PathBuf {
    common::repo_root().join("tests/data")
}

async fn collect(engine: &Engine, sql: &str) -> datafusion::common::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for statement in engine.parse(sql)? {
        if let Some(mut query) = engine.execute(statement).await? {
            while let Some(batch) = query.stream.next().await {
                out.push(batch?);
            }
        }
    }
    Ok(out)
}

/// How one of the ten arguments is given: a column of a type, or a literal.
#[derive(Debug, Clone)]
enum Arg {
    Column(DataType),
    Literal(Option<f64>),
}

#[derive(Debug, Clone)]
struct Case {
    args: Vec<Arg>,
    /// Rows of the ten values (None: null).
    rows: Vec<[Option<f64>; 10]>,
    /// Sizes of the batches the rows are split into (may be 0), dealt to `partitions` partitions in turn.
    batch_sizes: Vec<usize>,
    partitions: usize,
}

/// The gaussian model's training means and spreads of the ten arguments (labels, then errors from a tenth of it).
const MEANS: [f64; 5] = [4700.0, 2.5, 0.0, 0.0, 0.2];
const STDS: [f64; 5] = [300.0, 0.5, 0.2, 0.1, 0.1];

fn value(arg: usize) -> impl Strategy<Value = Option<f64>> {
    let (mean, std) = (MEANS[arg / 2], STDS[arg / 2]);
    let typical = if arg % 2 == 0 {
        (-4.0..4.0f64).prop_map(move |z| mean + z * std).boxed()
    } else {
        (1e-3..2.0f64).prop_map(move |f| f * std).boxed()
    };
    let special = prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.0, 1e300, 5e-324]);
    prop_oneof![1 => Just(None), 10 => typical.prop_map(Some), 2 => special.prop_map(Some)]
}

fn arg(index: usize) -> impl Strategy<Value = Arg> {
    let types = prop::sample::select(vec![
        DataType::Float64,
        DataType::Float32,
        DataType::Int32,
        DataType::Int64,
        DataType::Decimal128(12, 3),
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Float64)),
        DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Float32)),
    ]);
    prop_oneof![6 => types.prop_map(Arg::Column), 1 => value(index).prop_map(Arg::Literal)]
}

fn case() -> impl Strategy<Value = Case> {
    let args: Vec<_> = (0..10).map(arg).collect();
    let row: Vec<_> = (0..10).map(value).collect();
    let rows = prop::collection::vec(row.prop_map(|r| <[Option<f64>; 10]>::try_from(r).expect("ten")), 0..40);
    (args, rows, prop::collection::vec(0..16usize, 1..8), 1..4usize).prop_map(|(args, rows, mut batch_sizes, partitions)| {
        // Batches of the drawn sizes, the last one taking the rest.
        let mut left = rows.len();
        for size in batch_sizes.iter_mut() {
            *size = (*size).min(left);
            left -= *size;
        }
        batch_sizes.push(left);
        Case { args, rows, batch_sizes, partitions }
    })
}

/// A column of `data_type` holding `values` (integers and decimals hold the nearest value they can, or null).
fn column(data_type: &DataType, values: &[Option<f64>]) -> ArrayRef {
    let fits = |v: f64, limit: f64| v.is_finite() && v.abs() < limit;
    let f64s: Float64Array = values.iter().copied().collect();
    match data_type {
        DataType::Float64 => Arc::new(f64s),
        DataType::Float32 => Arc::new(values.iter().map(|v| v.map(|v| v as f32)).collect::<Float32Array>()),
        DataType::Int32 => Arc::new(values.iter().map(|v| v.filter(|v| fits(*v, 2e9)).map(|v| v.round() as i32)).collect::<Int32Array>()),
        DataType::Int64 => Arc::new(values.iter().map(|v| v.filter(|v| fits(*v, 9e15)).map(|v| v.round() as i64)).collect::<Int64Array>()),
        DataType::Decimal128(_, _) => {
            let decimals = values.iter().map(|v| v.filter(|v| fits(*v, 1e8)).map(|v| (v * 1000.0).round() as i128));
            Arc::new(decimals.collect::<Decimal128Array>().with_precision_and_scale(12, 3).expect("valid decimal"))
        }
        DataType::Dictionary(_, value) => {
            let plain = column(value, values);
            cast(&plain, data_type).expect("dictionary cast")
        }
        other => unreachable!("no columns of type {other}"),
    }
}

/// The table of a case: `id` (row number) and one column per argument given as a column.
fn table(case: &Case) -> (Arc<Schema>, Vec<Vec<RecordBatch>>) {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new((0..case.rows.len() as i64).collect::<Int64Array>())];
    for (i, arg) in case.args.iter().enumerate() {
        if let Arg::Column(data_type) = arg {
            let values: Vec<Option<f64>> = case.rows.iter().map(|r| r[i]).collect();
            fields.push(Field::new(format!("c{i}"), data_type.clone(), true));
            columns.push(column(data_type, &values));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let all = RecordBatch::try_new(Arc::clone(&schema), columns).expect("a valid batch");
    let mut partitions = vec![Vec::new(); case.partitions];
    let mut offset = 0;
    for (i, &size) in case.batch_sizes.iter().enumerate() {
        partitions[i % case.partitions].push(all.slice(offset, size));
        offset += size;
    }
    (schema, partitions)
}

fn sql_literal(v: Option<f64>) -> String {
    match v {
        None => "NULL".into(),
        Some(v) if v.is_nan() => "CAST('NaN' AS DOUBLE)".into(),
        Some(v) if v.is_infinite() => format!("CAST('{}Infinity' AS DOUBLE)", if v < 0.0 { "-" } else { "" }),
        Some(v) => format!("CAST({v:?} AS DOUBLE)"),
    }
}

/// The stars of a case as the functions see them: each column cast to Float64 (Arrow's cast, as DataFusion's
/// coercion does), literals as given.
fn stars(case: &Case, batch: &RecordBatch) -> Vec<StarInput> {
    let args: Vec<Vec<Option<f64>>> = case
        .args
        .iter()
        .enumerate()
        .map(|(i, arg)| match arg {
            Arg::Column(_) => {
                let doubles = cast(batch.column_by_name(&format!("c{i}")).expect("column"), &DataType::Float64).expect("cast");
                doubles.as_primitive::<Float64Type>().iter().collect()
            }
            Arg::Literal(v) => vec![*v; batch.num_rows()],
        })
        .collect();
    (0..batch.num_rows())
        .map(|r| {
            let v: Option<Vec<f64>> = args.iter().map(|a| a[r]).collect();
            v.map(|v| (std::array::from_fn(|k| v[2 * k]), std::array::from_fn(|k| v[2 * k + 1])))
        })
        .collect()
}

/// The struct column of `starflow_estimate` as estimates.
fn estimates(column: &ArrayRef) -> Vec<Estimate> {
    let s = column.as_struct();
    let f = |name: &str| s.column_by_name(name).expect("field").as_primitive::<Float64Type>().clone();
    let (value, e_p, e_n, density) = (f("value"), f("e_p"), f("e_n"), f("training_density"));
    let (median, p16, p84) = (f("median"), f("p16"), f("p84"));
    let bitmask = s.column_by_name("bitmask").expect("field").as_primitive::<Int64Type>().clone();
    let posterior = s.column_by_name("posterior").expect("field").as_list::<i32>().clone();
    let opt = |a: &Float64Array, r: usize| a.is_valid(r).then(|| a.value(r));
    (0..s.len())
        .map(|r| Estimate {
            value: opt(&value, r),
            e_p: opt(&e_p, r),
            e_n: opt(&e_n, r),
            median: opt(&median, r),
            p16: opt(&p16, r),
            p84: opt(&p84, r),
            training_density: opt(&density, r),
            bitmask: bitmask.value(r),
            posterior: posterior.is_valid(r).then(|| posterior.value(r).as_primitive::<Float64Type>().values().to_vec()),
        })
        .collect()
}

#[test]
fn any_table_of_numbers_gives_exactly_the_estimates_of_its_doubles() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options = EngineOptions { threads: 2, models_dir: Some(gaussian_dir()), ..EngineOptions::default() };
    let engine = rt.block_on(async { Engine::new(&options) }).unwrap();
    rt.block_on(collect(&engine, &format!("SET starflow.draws = {DRAWS}"))).unwrap();
    // The paper's method and v2 (its default release: every usable star drawn), half the cases each.
    for name in ["age", "age_v2"] {
        let model = engine.models().require(name).unwrap();
        let opts = Options { draws: DRAWS, seed: StarflowConfig::default().seed, chunk_rows: 1000, label_release: String::new() };
        let result = TestRunner::new(properties::config(64)).run(&case(), |case| {
            let (schema, partitions) = table(&case);
            let ctx = engine.context();
            ctx.deregister_table("t").map_err(|e| TestCaseError::fail(e.to_string()))?;
            ctx.register_table("t", Arc::new(MemTable::try_new(Arc::clone(&schema), partitions.clone()).expect("table")))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let args: Vec<String> = case
                .args
                .iter()
                .enumerate()
                .map(|(i, arg)| match arg {
                    Arg::Column(_) => format!("c{i}"),
                    Arg::Literal(v) => sql_literal(*v),
                })
                .collect();
            let sql = format!("SELECT id, starflow_estimate('{name}', {}) AS e FROM t ORDER BY id", args.join(", "));
            let batches = rt.block_on(collect(&engine, &sql));
            prop_assert!(batches.is_ok(), "{sql}: {:?}", batches.as_ref().err());
            let batches = batches.unwrap_or_default();
            let got: Vec<Estimate> = batches.iter().flat_map(|b| estimates(b.column(1))).collect();
            let ids: Vec<i64> = batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
            prop_assert_eq!(ids, (0..case.rows.len() as i64).collect::<Vec<_>>(), "every row once");

            let all = concat_batches(&schema, partitions.iter().flatten()).expect("concat");
            let mut all_rows: Vec<(i64, StarInput)> = all.column(0).as_primitive::<Int64Type>().values().iter().copied()
                .zip(stars(&case, &all)).collect();
            all_rows.sort_by_key(|(id, _)| *id);
            let inputs: Vec<StarInput> = all_rows.into_iter().map(|(_, s)| s).collect();
            let expected = estimate_batch(&model, &inputs, &opts, true, engine.models().pool());
            prop_assert_eq!(Ok(got), expected, "{}", sql);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{name}: {e}");
        }
    }
}

/// The first `n` bundled stars with the ten DR19 input columns dictionary-encoded (Arrow Dictionary(Int32, Float32),
/// stored as Parquet dictionary pages), or as they are.
fn write_stars(path: &Path, n: usize, dictionary: bool) {
    let batches = read_parquet(&bundled_catalogue());
    let batch = concat_batches(&batches[0].schema(), &batches).unwrap().slice(0, n);
    let inputs = ["teff", "e_teff", "logg", "e_logg", "fe_h", "e_fe_h", "c_h", "e_c_h", "n_h", "e_n_h"];
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Float32));
    let (mut fields, mut columns) = (Vec::new(), Vec::new());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if dictionary && inputs.contains(&field.name().as_str()) {
            fields.push(Field::new(field.name(), dict.clone(), true));
            columns.push(cast(column, &dict).unwrap());
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn dictionary_encoded_parquet_columns_give_the_numbers_of_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, dict) = (dir.path().join("plain.parquet"), dir.path().join("dict.parquet"));
    write_stars(&plain, 40, false);
    write_stars(&dict, 40, true);
    assert!(matches!(read_parquet(&dict)[0].schema().field_with_name("teff").unwrap().data_type(), DataType::Dictionary(..)));
    let query = |input: &Path| {
        let out = starflow()
            .current_dir(common::repo_root())
            .args(["-q", "--format-out", "csv", "run", "queries/dr19_inputs.sql"])
            .arg(common::repo_root().join("queries/ages_masses.sql"))
            .args(["--define", &format!("input={}", input.display())])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
        lines.sort(); // the query has no ORDER BY
        lines
    };
    let (from_plain, from_dict) = (query(&plain), query(&dict));
    assert!(from_plain.len() > 30, "a header and the good stars of 40: {from_plain:?}");
    assert_eq!(from_dict, from_plain);
}

#[test]
fn numbers_stored_as_text_are_a_plan_error_naming_the_argument_and_try_cast_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let header = "id,teff,e_teff,logg,e_logg,fe_h,e_fe_h,c_fe,e_c_fe,n_fe,e_n_fe\n";
    let rows = ["a,4700,50,2.5,0.05,-0.1,0.02,0.0,0.04,0.2,0.04", "b,4800,60,2.4,0.05,0.0,0.02,0.1,0.04,0.3,0.04"];
    let text = dir.path().join("text.csv");
    std::fs::write(&text, format!("{header}{}\n{}\nc,n/a,50,2.5,0.05,-0.1,0.02,0.0,0.04,0.2,0.04\n", rows[0], rows[1])).unwrap();
    let numbers = dir.path().join("numbers.csv");
    std::fs::write(&numbers, format!("{header}{}\n{}\nc,,50,2.5,0.05,-0.1,0.02,0.0,0.04,0.2,0.04\n", rows[0], rows[1])).unwrap();
    // The same numbers in Parquet, every column stored as text.
    let strings = dir.path().join("strings.parquet");
    let names: Vec<&str> = header.trim().split(',').collect();
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(datafusion::arrow::array::StringArray::from(rows.iter().map(|r| r.split(',').nth(i).unwrap()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_from_iter(names.iter().zip(columns)).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(&strings).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let models = gaussian_dir();
    let run = |table: &Path, args: &str| {
        starflow()
            .args(["--models", models.to_str().unwrap(), "--table", &format!("t={}", table.display()), "--format-out", "csv"])
            .args(["sql", &format!("SELECT id, a['age'] AS age, a['bitmask'] AS bitmask FROM (SELECT id, starflow_age({args}) AS a FROM t) ORDER BY id")])
            .output()
            .unwrap()
    };
    for table in [&text, &strings] {
        let out = run(table, ARGS);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("starflow_age: argument 1 (teff) must be numeric, got Utf8"), "{stderr}");
        assert!(stderr.contains("TRY_CAST(teff AS DOUBLE)"), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // The documented way: TRY_CAST reads the numbers, and a text that is not one is null, i.e. BAD_INPUT.
    let cast_all = ARGS.split(", ").map(|a| format!("TRY_CAST({a} AS DOUBLE)")).collect::<Vec<_>>().join(", ");
    let out = run(&text, &cast_all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = run(&numbers, ARGS);
    assert!(expected.status.success(), "{}", String::from_utf8_lossy(&expected.stderr));
    assert_eq!(stdout_of(&out), stdout_of(&expected));
    let lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[3], "c,,4", "the text 'n/a' is BAD_INPUT");
    let star_a: Vec<&str> = lines[1].split(',').collect();
    assert!(star_a[0] == "a" && star_a[1].parse::<f64>().is_ok() && star_a[2] == "0", "star a has an age: {star_a:?}");
    let parquet = run(&strings, &cast_all);
    assert!(parquet.status.success(), "{}", String::from_utf8_lossy(&parquet.stderr));
    assert_eq!(stdout_of(&parquet).lines().take(3).collect::<Vec<_>>(), lines[..3].to_vec(), "Parquet text columns too");
}
