//! The StarFlow functions inside queries: one flow evaluation per star whatever the query shape, and the same numbers
//! for a star whatever the batch size, partitioning, thread count or surrounding query.


use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use futures::StreamExt;
use starflow::engine::{Engine, EngineOptions};

const CATALOGUE: &str = "examples/data/astraAllStarASPCAP_apokasc3.parquet";

/// The DR19 input view of docs/METHOD.md over the bundled catalogue's first `n` stars.
fn view(n: usize) -> String {
    format!(
        "CREATE VIEW stars AS SELECT sdss4_apogee_id AS id, teff, e_teff, logg, e_logg, fe_h, e_fe_h, \
         c_h - fe_h AS c_fe, sqrt(e_c_h * e_c_h + e_fe_h * e_fe_h) AS e_c_fe, \
         n_h - fe_h AS n_fe, sqrt(e_n_h * e_n_h + e_fe_h * e_fe_h) AS e_n_fe \
         FROM '{}/{CATALOGUE}' WHERE sdss4_apogee_id IS NOT NULL ORDER BY sdss4_apogee_id LIMIT {n}",
        env!("CARGO_MANIFEST_DIR")
    )
}

const ARGS: &str = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe";

async fn run(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for statement in engine.parse(sql).unwrap() {
        if let Some(mut q) = engine.execute(statement).await.unwrap() {
            while let Some(b) = q.stream.next().await {
                out.push(b.unwrap());
            }
        }
    }
    out
}

fn engine(threads: usize, batch_size: usize) -> Engine {
    Engine::new(&EngineOptions { threads, batch_size: Some(batch_size), ..EngineOptions::default() }).unwrap()
}

/// (id, age, e_p, e_n, density, bitmask) rows, sorted by id.
fn rows(batches: &[RecordBatch]) -> Vec<(String, Option<f64>, Option<f64>, Option<f64>, Option<f64>, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let id = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
        let id = id.as_string::<i32>();
        let f = |i: usize| b.column(i).as_primitive::<Float64Type>().clone();
        let (age, ep, en, dens) = (f(1), f(2), f(3), f(4));
        let mask = b.column(5).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let opt = |a: &datafusion::arrow::array::Float64Array| (!a.is_null(r)).then(|| a.value(r));
            out.push((id.value(r).to_string(), opt(&age), opt(&ep), opt(&en), opt(&dens), mask.value(r)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn several_outputs_of_one_call_evaluate_the_flow_once_per_star() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One thread: no repartitioning between the view's TopK and the call, where the optimizer once pushed the call
    // below the TopK and evaluated it on every row of the file.
    for threads in [1, 2] { rt.block_on(async {
        let engine = engine(threads, 8192);
        let model = engine.models().require("age").unwrap();
        run(&engine, &view(24)).await;
        let shapes = [
            format!("SELECT id, a['age'], a['e_p_age'], a['e_n_age'], a['training_density'], a['bitmask'] FROM (SELECT id, starflow_age({ARGS}) AS a FROM stars)"),
            format!("SELECT id, starflow_age({ARGS})['age'], starflow_age({ARGS})['e_p_age'], starflow_age({ARGS})['e_n_age'], starflow_age({ARGS})['training_density'], starflow_age({ARGS})['bitmask'] FROM stars"),
        ];
        let mut results = Vec::new();
        for sql in &shapes {
            let before = model.stars_evaluated();
            let batches = run(&engine, sql).await;
            assert_eq!(model.stars_evaluated() - before, 24, "one evaluation per star for: {sql}");
            results.push(rows(&batches));
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0].len(), 24);
        assert!(results[0].iter().all(|r| r.1.is_some()), "every bundled star gets an age");
    }) }
}

#[test]
fn a_star_gets_the_same_numbers_in_any_batch_partitioning_and_query() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (n, sql) = (30, format!("SELECT id, a['age'], a['e_p_age'], a['e_n_age'], a['training_density'], a['bitmask'] FROM (SELECT id, starflow_age({ARGS}) AS a FROM stars)"));
    let reference = rt.block_on(async {
        let e = engine(1, 8192);
        run(&e, &view(n)).await;
        rows(&run(&e, &sql).await)
    });
    for (threads, batch) in [(2, 1), (2, 7), (3, 4)] {
        let got = rt.block_on(async {
            let e = engine(threads, batch);
            run(&e, &view(n)).await;
            rows(&run(&e, &sql).await)
        });
        assert_eq!(got, reference, "threads {threads}, batch size {batch}");
    }
    // A star's numbers do not depend on which other stars are in the query.
    let subset = rt.block_on(async {
        let e = engine(2, 3);
        run(&e, &view(n)).await;
        let odd = format!("SELECT * FROM ({sql}) WHERE id IN (SELECT id FROM stars ORDER BY id DESC LIMIT 5)");
        rows(&run(&e, &odd).await)
    });
    assert_eq!(subset, reference[n - 5..].to_vec());
}

/// `starflow_age` and `starflow_mass` (method v2) and `starflow_estimate` of the paper's models over the DR19 input view
/// of `queries/dr19_inputs.sql` (which sets the labels' release) against an independent computation of the same stars
/// (tests/data/make_sql_parity.py: the view's float32 arithmetic, the engine's draws ported to Python around
/// reference.py's draw plan, ONNX Runtime, and models/train/reference.py). Tolerances as in udfs/tests/parity.rs: the
/// same ONNX Runtime on bitwise-equal inputs, in different batch arrangements.
#[test]
fn sql_results_match_the_python_reference_for_the_same_stars() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tests/data/sql_parity.json")).unwrap()).unwrap();
    let defines = std::collections::HashMap::from([(
        "input".to_string(),
        root.join(CATALOGUE).display().to_string(),
    )]);
    let view = starflow::session::substitute(&std::fs::read_to_string(root.join("queries/dr19_inputs.sql")).unwrap(), &defines).unwrap();
    let stars = fixture["stars"].as_array().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let calls = [
        ("age", format!("starflow_age({ARGS})"), ["age", "e_p_age", "e_n_age", "age_median", "age_p16", "age_p84"]),
        ("mass", format!("starflow_mass({ARGS})"), ["mass", "e_p_mass", "e_n_mass", "mass_median", "mass_p16", "mass_p84"]),
        ("age_paper", format!("starflow_estimate('age_paper', {ARGS})"), ["value", "e_p", "e_n", "median", "p16", "p84"]),
        ("mass_paper", format!("starflow_estimate('mass_paper', {ARGS})"), ["value", "e_p", "e_n", "median", "p16", "p84"]),
    ];
    let mut one_row = 0;
    for (model, call, fields) in calls {
        let numbers: Vec<String> = fields.iter().map(|f| format!("r['{f}']")).collect();
        let sql = format!(
            "SELECT sdss4_apogee_id, {}, r['training_density'], r['bitmask'] \
             FROM (SELECT sdss4_apogee_id, {call} AS r FROM \
                   (SELECT * FROM starflow_input WHERE sdss4_apogee_id IS NOT NULL ORDER BY sdss4_apogee_id LIMIT {})) \
             ORDER BY sdss4_apogee_id",
            numbers.join(", "),
            stars.len()
        );
        let batches = rt.block_on(async {
            let e = engine(2, 8);
            run(&e, &view).await;
            run(&e, &sql).await
        });
        let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), stars.len());
        let ids = datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
        let number = |column: usize, row: usize| {
            let a = batch.column(column).as_primitive::<Float64Type>();
            (!a.is_null(row)).then(|| a.value(row))
        };
        let step = if model.starts_with("age") { 14.0 / 249.0 } else { 3.0 / 249.0 };
        for (row, star) in stars.iter().enumerate() {
            let reference = &star[model];
            let id = star["id"].as_str().unwrap();
            assert_eq!(ids.as_string::<i32>().value(row), id);
            assert_eq!(batch.column(8).as_primitive::<Int64Type>().value(row), reference["bitmask"].as_i64().unwrap(), "{id} {model}: bitmask");
            assert_eq!(number(1, row), reference["value"].as_f64(), "{id} {model}: maximum");
            for (column, key) in [(2, "e_p"), (3, "e_n"), (4, "median"), (5, "p16"), (6, "p84")] {
                let (ours, theirs) = (number(column, row).unwrap(), reference[key].as_f64().unwrap());
                assert!((ours - theirs).abs() <= 0.25 * step, "{id} {model}: {key} {ours} vs {theirs}");
            }
            let density = reference["training_density"].as_f64().unwrap();
            assert!((number(7, row).unwrap() / density - 1.0).abs() <= 1e-3, "{id} {model}: density {:?} vs {density}", number(7, row));
            one_row += usize::from(reference["rows"].as_u64() == Some(1));
        }
    }
    eprintln!("{one_row} star-models of one flow row (method v2 within the training noise) among {}", 4 * stars.len());
}

/// `ORDER BY key LIMIT n` over a flow call evaluates the n stars kept, not the whole table (plan_rules.rs), with the
/// numbers of the subquery form; a sort on the flow's own output still needs every star, and gets the right top n.
#[test]
fn a_topk_evaluates_only_the_stars_it_keeps() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let e = engine(2, 64);
        let model = e.models().require("age").unwrap();
        run(&e, &view(200)).await;
        let call = format!("starflow_age({ARGS})");
        let count = async |sql: &str| {
            let before = model.stars_evaluated();
            let out = rows(&run(&e, sql).await);
            (out, model.stars_evaluated() - before)
        };
        let fields = "a['age'], a['e_p_age'], a['e_n_age'], a['training_density'], a['bitmask']";
        let (top, n) = count(&format!("SELECT id, {fields} FROM (SELECT id, {call} AS a FROM stars) ORDER BY id LIMIT 5")).await;
        assert_eq!((top.len(), n), (5, 5), "five stars evaluated for the top five");
        let (kept_first, _) = count(&format!(
            "SELECT id, {fields} FROM (SELECT id, {call} AS a FROM (SELECT * FROM stars ORDER BY id LIMIT 5))"
        ))
        .await;
        assert_eq!(top, kept_first);
        let (all, n) = count(&format!("SELECT id, {fields} FROM (SELECT id, {call} AS a FROM stars)")).await;
        assert_eq!(n, 200);
        let (by_age, n) = count(&format!("SELECT id, {fields} FROM (SELECT id, {call} AS a FROM stars) ORDER BY a['age'] DESC, id LIMIT 3")).await;
        assert_eq!(n, 200, "a sort on the age needs every age");
        // rows() orders by id: restore the age order (ties by id) on both sides.
        let by_age_then_id = |mut v: Vec<_>| {
            v.sort_by(|x: &(String, Option<f64>, _, _, _, _), y| y.1.partial_cmp(&x.1).unwrap().then(x.0.cmp(&y.0)));
            v
        };
        assert_eq!(by_age_then_id(by_age), by_age_then_id(all)[..3].to_vec());
    });
}
