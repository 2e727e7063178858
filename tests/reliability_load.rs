//! One engine under load: eight queries with StarFlow functions running at once through one `Engine` give exactly the
//! results of running them one by one; a query that needs more than --memory-limit fails cleanly (or spills), and the
//! engine then still answers, with the same numbers.

mod common;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::compute::concat_batches;
use futures::StreamExt;
use starflow::engine::{Engine, EngineOptions};
use starflow::error::{CliError, ErrorClass};

const ARGS: &str = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe";

/// Queries over `stars` (the first 50 bundled stars), each with StarFlow functions and an order.
fn queries() -> Vec<String> {
    let from = "FROM stars ORDER BY sdss4_apogee_id";
    vec![
        format!("SELECT sdss4_apogee_id, a['age'], a['e_p_age'], a['e_n_age'], a['bitmask'] FROM (SELECT *, starflow_age({ARGS}) AS a {from})"),
        format!("SELECT sdss4_apogee_id, m['mass'], m['training_density'], m['bitmask'] FROM (SELECT *, starflow_mass({ARGS}) AS m {from})"),
        format!("SELECT sdss4_apogee_id, starflow_estimate('age', {ARGS}) AS e {from}"),
        format!("SELECT sdss4_apogee_id, starflow_estimate('mass', {ARGS})['posterior'] AS p {from}"),
        format!("SELECT sdss4_apogee_id, starflow_density('age', {ARGS}) AS d, starflow_flags('mass', {ARGS}) AS f {from}"),
        format!("SELECT sdss4_apogee_id, array_max(starflow_age_posterior({ARGS})) AS peak {from}"),
        format!("SELECT sdss4_apogee_id, array_sum(starflow_mass_posterior({ARGS})) AS total {from}"),
        format!(
            "SELECT a['bitmask'] AS bitmask, count(*) AS n, sum(a['age']) AS ages \
             FROM (SELECT starflow_age({ARGS}) AS a FROM stars) GROUP BY a['bitmask'] ORDER BY bitmask"
        ),
    ]
}

async fn collect(engine: &Engine, sql: &str) -> Result<RecordBatch, CliError> {
    let mut batches = Vec::new();
    for statement in engine.parse(sql)? {
        if let Some(mut query) = engine.execute(statement).await? {
            let schema = query.stream.schema();
            while let Some(batch) = query.stream.next().await {
                batches.push(batch?);
            }
            return Ok(concat_batches(&schema, &batches)?);
        }
    }
    Err(CliError::runtime("no result"))
}

fn engine(rt: &tokio::runtime::Runtime, memory_limit: Option<usize>) -> Engine {
    let options = EngineOptions { threads: 2, memory_limit, ..EngineOptions::default() };
    let engine = rt.block_on(async { Engine::new(&options) }).unwrap();
    let defines = std::collections::HashMap::from([("input".to_string(), common::bundled_catalogue().display().to_string())]);
    let view = std::fs::read_to_string(common::repo_root().join("queries/dr19_inputs.sql")).unwrap();
    let sql = format!(
        "{}; CREATE VIEW stars AS SELECT * FROM starflow_input WHERE sdss4_apogee_id IS NOT NULL ORDER BY sdss4_apogee_id LIMIT 50",
        starflow::session::substitute(&view, &defines).unwrap()
    );
    rt.block_on(async {
        for statement in engine.parse(&sql).unwrap() {
            engine.execute(statement).await.unwrap();
        }
    });
    engine
}

#[test]
fn eight_concurrent_queries_give_the_results_of_running_them_one_by_one() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let engine = engine(&rt, None);
    let queries = queries();
    let one_by_one: Vec<RecordBatch> = queries.iter().map(|q| rt.block_on(collect(&engine, q)).unwrap()).collect();
    assert_eq!(one_by_one[0].num_rows(), 50);
    let evaluated = engine.models().require("age").unwrap().stars_evaluated();
    for round in 0..3 {
        // All eight are planned and started before any is awaited to the end: they share the CPU runtime, the
        // inference pool and its per-thread ONNX Runtime sessions.
        let at_once = rt.block_on(futures::future::join_all(queries.iter().map(|q| collect(&engine, q))));
        for ((sql, alone), together) in queries.iter().zip(&one_by_one).zip(at_once) {
            assert_eq!(&together.unwrap(), alone, "round {round}: {sql}");
        }
    }
    // Five of the queries evaluate the age model on each of the 50 stars: 3 rounds x 5 x 50 evaluations.
    let age = engine.models().require("age").unwrap();
    assert_eq!(age.stars_evaluated() - evaluated, 3 * 5 * 50);
}

/// A hash join whose build side (3 million rows) cannot spill: far more than a 16 MiB limit.
const JOIN: &str = "SELECT count(*) FROM range(0, 3000000) x JOIN range(0, 3000000) y ON x.value = y.value";
/// A sort of the same rows, which spills to disk.
const SORT: &str = "SELECT value FROM range(0, 3000000) ORDER BY value DESC";

#[test]
fn a_query_over_the_memory_limit_fails_cleanly_and_the_engine_still_answers() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let engine = engine(&rt, Some(16 << 20));
    let first = &queries()[2];
    let before = rt.block_on(collect(&engine, first)).unwrap();

    let error = rt.block_on(collect(&engine, JOIN)).unwrap_err();
    assert_eq!(error.class, ErrorClass::Runtime, "{error}");
    assert!(error.message.starts_with("out of memory under --memory-limit: "), "{error}");
    let sorted = rt.block_on(collect(&engine, SORT)).unwrap();
    let values = sorted.column(0).as_primitive::<Int64Type>();
    assert_eq!((values.len(), values.value(0), values.value(2_999_999)), (3_000_000, 2_999_999, 0));
    assert!(values.values().windows(2).all(|w| w[0] > w[1]), "sorted");
    // The failure released its memory: the engine answers, with the same numbers.
    assert_eq!(rt.block_on(collect(&engine, first)).unwrap(), before);

    // Through the command line: exit code 1 and one line.
    let out = common::starflow().args(["--memory-limit", "16M", "sql", JOIN]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("starflow: error: out of memory under --memory-limit: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn a_panic_inside_a_query_is_an_error_not_a_shorter_result() {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let engine = rt.block_on(async { Engine::new(&EngineOptions { threads: 2, batch_size: Some(1000), ..EngineOptions::default() }) }).unwrap();
    // A function with a bug: it panics on one row, after other batches have gone through.
    let buggy = create_udf("buggy", vec![DataType::Int64], DataType::Int64, Volatility::Immutable, Arc::new(|args: &[ColumnarValue]| {
        let ColumnarValue::Array(values) = &args[0] else { unreachable!("called on a column") };
        let values = values.as_primitive::<Int64Type>();
        assert!(!values.values().contains(&4321), "a bug");
        Ok(ColumnarValue::Array(Arc::new(values.clone()) as Arc<dyn datafusion::arrow::array::Array>))
    }));
    engine.context().register_udf(buggy);
    let result = rt.block_on(collect(&engine, "SELECT buggy(value) FROM range(0, 10000)"));
    let error = result.expect_err("the query fails");
    assert_eq!(error.class, ErrorClass::Runtime);
    assert!(error.message.contains("internal error (please report): a bug"), "{error}");
}
