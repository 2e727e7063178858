//! `starflow catalog`: the three StarFlow files, row-matched to the input, with their schema and metadata; bad rows and
//! a missing log g; the C-N levels and CN_ATYPICAL, and `--no-cn-flag`; the same numbers as the SQL functions, for both
//! methods; one evaluation per star and model; S3 in and out; nothing left on failure.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{BUCKET, S3Server, bundled_catalogue, read_parquet, starflow};
use starflow::catalog::CatalogMethod;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, Float32Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

const FILES: [&str; 3] = ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"];
const SUMMARY: [&str; 23] = [
    "sdss_id", "sdss4_apogee_id", "catalogid", "age", "e_p_age", "e_n_age", "mass", "e_p_mass", "e_n_mass",
    "training_density", "bitmask", "mass_training_density", "mass_bitmask", "training_density_percentile",
    "mass_training_density_percentile",
    "age_median", "age_p16", "age_p84", "mass_median", "mass_p16", "mass_p84", "age_cn_level", "mass_cn_level",
];
/// Rows of the slice made unusable: ASPCAP flag_bad, a NaN error, a null [Fe/H] (which [C/Fe] and [N/Fe] derive from).
const FLAG_BAD: [usize; 2] = [3, 4];
const NAN_ERROR: usize = 5;
const NULL_LABEL: usize = 6;
/// A row without log g: integrated out by the v2 models (LABEL_MARGINALISED), BAD_INPUT for the paper's.
const NULL_LOGG: usize = 7;

/// The first `n` bundled stars with a few rows made bad, as a DR19 Parquet file.
fn write_slice(path: &Path, n: usize) -> RecordBatch {
    let file = std::fs::File::open(bundled_catalogue()).unwrap();
    let mut reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().with_batch_size(n).build().unwrap();
    let batch = reader.next().unwrap().unwrap();
    let schema = batch.schema();
    let mut columns = batch.columns().to_vec();
    let set = |name: &str| schema.index_of(name).unwrap();
    let flag: BooleanArray = (0..n).map(|i| Some(FLAG_BAD.contains(&i))).collect();
    columns[set("flag_bad")] = Arc::new(flag);
    let e_teff = columns[set("e_teff")].as_primitive::<datafusion::arrow::datatypes::Float32Type>();
    let e_teff: Float32Array = (0..n).map(|i| Some(if i == NAN_ERROR { f32::NAN } else { e_teff.value(i) })).collect();
    columns[set("e_teff")] = Arc::new(e_teff);
    for (name, row) in [("fe_h", NULL_LABEL), ("logg", NULL_LOGG)] {
        let values = columns[set(name)].as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        let values: Float32Array = (0..n).map(|i| (i != row).then(|| values.value(i))).collect();
        columns[set(name)] = Arc::new(values);
    }
    let slice = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&slice).unwrap();
    writer.close().unwrap();
    slice
}

fn read_all(path: &Path) -> RecordBatch {
    let batches = read_parquet(path);
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    batch.column_by_name(name).unwrap().as_primitive::<Float64Type>().iter().collect()
}

fn i64s(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    batch.column_by_name(name).unwrap().as_primitive::<Int64Type>().iter().collect()
}

fn ids(batch: &RecordBatch) -> Vec<Option<String>> {
    let ids = datafusion::arrow::compute::cast(batch.column_by_name("sdss4_apogee_id").unwrap(), &DataType::Utf8).unwrap();
    ids.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect()
}

fn kv_metadata(path: &Path) -> std::collections::HashMap<String, String> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let kv = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    kv.into_iter().filter_map(|kv| Some((kv.key, kv.value?))).collect()
}

fn vac_column_names(model: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::repo_root().join("tests/data/vac_posterior_columns.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[model].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn run_catalog(args: &[&str]) {
    let output = starflow().arg("catalog").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_three_files_are_row_matched_with_their_schema_metadata_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    let input = write_slice(&dir.path().join("slice.parquet"), n);
    let out = dir.path().join("vac");
    run_catalog(&[dir.path().join("slice.parquet").to_str().unwrap(), out.to_str().unwrap()]);

    let summary = read_all(&out.join(FILES[0]));
    let schema = summary.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, SUMMARY);
    assert_eq!(schema.field_with_name("sdss4_apogee_id").unwrap().data_type(), &DataType::Utf8, "a plain string");
    // Row-matched: same rows, same order, keys carried through.
    assert_eq!(ids(&summary), ids(&input));
    assert_eq!(i64s(&summary, "sdss_id"), input.column_by_name("sdss_id").unwrap().as_primitive::<Int64Type>().iter().collect::<Vec<_>>());
    for field in summary.schema().fields() {
        assert!(!field.metadata()["description"].is_empty(), "{} has a description", field.name());
    }
    assert_eq!(summary.schema().field_with_name("age").unwrap().metadata()["unit"], "Gyr");
    assert_eq!(summary.schema().field_with_name("e_n_mass").unwrap().metadata()["unit"], "solMass");
    let kv = kv_metadata(&out.join(FILES[0]));
    assert_eq!(kv["starflow_version"], env!("CARGO_PKG_VERSION"));
    assert!(kv["models"].contains("\"name\":\"age\"") && kv["models"].contains("\"name\":\"mass\""), "{}", kv["models"]);
    assert_eq!((kv["posterior_method"].as_str(), kv["label_release"].as_str()), ("v2", "dr19"), "the default method, and the DR19 view's release");

    // Bad rows: no estimate, BAD_INPUT in both models' masks; every other star has both estimates, the one without log
    // g flagged LABEL_MARGINALISED (64) by both and without C-N levels; the others have levels, and CN_ATYPICAL (32)
    // exactly above their model's threshold (in the metadata).
    let (age, mask, mass_mask) = (f64s(&summary, "age"), i64s(&summary, "bitmask"), i64s(&summary, "mass_bitmask"));
    let models: serde_json::Value = serde_json::from_str(&kv["models"]).unwrap();
    let threshold = |i: usize| models[i]["cn_threshold"].as_f64().unwrap();
    assert_eq!(kv["cn_flag"], "true");
    let bad = [FLAG_BAD[0], FLAG_BAD[1], NAN_ERROR, NULL_LABEL];
    for row in 0..n {
        if bad.contains(&row) {
            assert_eq!((age[row], mask[row], mass_mask[row]), (None, Some(4), Some(4)), "row {row}");
            assert_eq!(f64s(&summary, "training_density")[row], None);
        } else {
            assert!(age[row].is_some() && f64s(&summary, "mass")[row].is_some(), "row {row}");
            assert_eq!(mask[row].unwrap() & 4, 0, "row {row}");
        }
        for (i, (level, mask)) in [("age_cn_level", &mask), ("mass_cn_level", &mass_mask)].into_iter().enumerate() {
            let (level, mask) = (f64s(&summary, level)[row], mask[row].unwrap());
            assert_eq!(mask & 64 != 0, row == NULL_LOGG, "row {row}: LABEL_MARGINALISED");
            if bad.contains(&row) || row == NULL_LOGG {
                assert_eq!((level, mask & 32), (None, 0), "row {row}: no C-N level");
            } else {
                let level = level.unwrap();
                assert!((0.0..=1.0).contains(&level), "row {row}: level {level}");
                assert_eq!(mask & 32 != 0, level > threshold(i), "row {row}: CN_ATYPICAL iff the level exceeds the threshold");
            }
        }
        // The extras: median between the 16th and 84th percentiles where there is an estimate, null where not.
        for target in ["age", "mass"] {
            let column = |suffix: &str| f64s(&summary, &format!("{target}_{suffix}"))[row];
            match (column("p16"), column("median"), column("p84")) {
                (Some(lo), Some(mid), Some(hi)) => assert!(lo <= mid && mid <= hi, "row {row} {target}: {lo} {mid} {hi}"),
                other => assert!(bad.contains(&row) && other == (None, None, None), "row {row} {target}: {other:?}"),
            }
        }
    }

    for (file, model, grid_stop, value) in [(FILES[1], "age", 14.0, "age"), (FILES[2], "mass", 3.0, "mass")] {
        let posterior = read_all(&out.join(file));
        assert_eq!(posterior.num_rows(), n);
        assert_eq!(ids(&posterior), ids(&input), "{file} is row-matched");
        let posterior_schema = posterior.schema();
        assert!(posterior_schema.fields()[..3].iter().all(|f| f.metadata().get("description").is_some_and(|d| !d.is_empty())), "{file}: keys described");
        let names: Vec<String> = posterior.schema().fields().iter().skip(3).map(|f| f.name().clone()).collect();
        assert_eq!(names, vac_column_names(model), "{file}: the VAC's column names");
        let grid: Vec<f64> = serde_json::from_str(&kv_metadata(&out.join(file))["grid"]).unwrap();
        assert_eq!((grid.len(), grid[0], grid[249]), (250, 0.0, grid_stop));
        let columns: Vec<Vec<Option<f64>>> = names.iter().map(|c| f64s(&posterior, c)).collect();
        let values = f64s(&summary, value);
        for row in 0..n {
            let p: Vec<Option<f64>> = columns.iter().map(|c| c[row]).collect();
            if bad.contains(&row) {
                assert!(p.iter().all(Option::is_none), "{file} row {row}: no posterior");
                continue;
            }
            let p: Vec<f64> = p.into_iter().map(Option::unwrap).collect();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{file} row {row}: sums to 1");
            // The summary comes from the same evaluation: its value is the posterior's maximum.
            let argmax = (0..250).fold(0, |b, i| if p[i] > p[b] { i } else { b });
            assert_eq!(Some(grid[argmax]), values[row], "{file} row {row}");
        }
    }
}

#[test]
fn the_catalogue_gives_the_numbers_of_the_sql_functions_with_one_evaluation_per_star_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let n = 24;
    let input = dir.path().join("slice.parquet");
    write_slice(&input, n);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for method in [CatalogMethod::V2, CatalogMethod::Paper] {
        // The paper's method cannot do without log g.
        let good = if method == CatalogMethod::V2 { n - 4 } else { n - 5 };
        let (age_model, mass_model) = method.models();
        let (catalogue, functions) = rt.block_on(async {
            let engine = starflow::engine::Engine::new(&starflow::engine::EngineOptions { threads: 2, ..Default::default() }).unwrap();
            let (age, mass) = (engine.models().require(age_model).unwrap(), engine.models().require(mass_model).unwrap());
            let collect = async |sql: &str| {
                let mut batches = Vec::new();
                for statement in engine.parse(sql).unwrap() {
                    if let Some(mut q) = engine.execute(statement).await.unwrap() {
                        while let Some(b) = futures::StreamExt::next(&mut q.stream).await {
                            batches.push(b.unwrap());
                        }
                    }
                }
                concat_batches(&batches[0].schema(), &batches).unwrap()
            };
            let release = starflow::survey::define_input(&engine, input.to_str().unwrap(), None, starflow::survey::Release::Auto, &[]).await.unwrap();
            assert_eq!(release, starflow::survey::Release::Dr19);
            let catalogue = collect(&starflow::catalog::catalog_sql(method, &[]).unwrap()).await;
            assert_eq!((age.stars_evaluated(), mass.stars_evaluated()), (good as u64, good as u64), "once per good star and model");
            let functions = collect(&format!(
                "SELECT a['value'] AS age, a['e_p'] AS e_p_age, a['e_n'] AS e_n_age, a['training_density'] AS density, \
                 a['median'] AS age_median, m['value'] AS mass, m['e_n'] AS e_n_mass, m['p84'] AS mass_p84 FROM (SELECT \
                 starflow_estimate('{age_model}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS a, \
                 starflow_estimate('{mass_model}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS m \
                 FROM starflow_input WHERE NOT flag_bad) ORDER BY age",
            ))
            .await;
            (catalogue, functions)
        });
        assert_eq!(catalogue.num_rows(), n);
        // Same stars, same draws: bitwise the same numbers (compared as sorted sets: the functions' query is unordered).
        let sorted = |b: &RecordBatch, c: &str| {
            let mut v: Vec<u64> = f64s(b, c).into_iter().flatten().map(f64::to_bits).collect();
            v.sort();
            v
        };
        let columns = [("age", "age"), ("e_p_age", "e_p_age"), ("e_n_age", "e_n_age"), ("training_density", "density"), ("age_median", "age_median"), ("mass", "mass"), ("e_n_mass", "e_n_mass"), ("mass_p84", "mass_p84")];
        for (ours, theirs) in columns {
            assert_eq!(sorted(&catalogue, ours), sorted(&functions, theirs), "{method:?} {ours}");
            assert_eq!(sorted(&catalogue, ours).len(), good, "{method:?} {ours}: a number for every good star");
        }
    }
}

/// `--method paper` makes the catalogue with the paper's models, and says so in the files; the labels' release is
/// recorded as not used. Its numbers differ from v2's.
#[test]
fn the_paper_method_catalogue_uses_the_paper_models_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("slice.parquet");
    write_slice(&input, 12);
    let (v2, paper, no_cn) = (dir.path().join("v2"), dir.path().join("paper"), dir.path().join("no_cn"));
    run_catalog(&["-q", input.to_str().unwrap(), v2.to_str().unwrap()]);
    run_catalog(&["-q", "--method", "paper", input.to_str().unwrap(), paper.to_str().unwrap()]);
    run_catalog(&["-q", "--no-cn-flag", input.to_str().unwrap(), no_cn.to_str().unwrap()]);
    let kv = kv_metadata(&paper.join(FILES[0]));
    assert_eq!(kv["posterior_method"], "paper");
    assert!(kv["label_release"].starts_with("none"), "{}", kv["label_release"]);
    assert!(kv["models"].contains("\"name\":\"age_paper\"") && kv["models"].contains("\"name\":\"mass_paper\""), "{}", kv["models"]);
    let (ours, theirs) = (read_all(&paper.join(FILES[0])), read_all(&v2.join(FILES[0])));
    assert_eq!(ours.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), SUMMARY);
    assert_eq!(ids(&ours), ids(&theirs));
    assert_ne!(f64s(&ours, "e_p_age"), f64s(&theirs, "e_p_age"), "two methods, two sets of numbers");
    // The paper's models have no C-N plane; v2's have one, unless --no-cn-flag: then the same numbers, no levels, no
    // bit 32 (and the metadata says so).
    for level in ["age_cn_level", "mass_cn_level"] {
        assert!(f64s(&ours, level).iter().all(Option::is_none), "paper: {level}");
        assert!(f64s(&theirs, level).iter().any(Option::is_some), "v2: {level}");
    }
    let without = read_all(&no_cn.join(FILES[0]));
    assert_eq!(kv_metadata(&no_cn.join(FILES[0]))["cn_flag"], "false");
    for name in SUMMARY {
        match name {
            "age_cn_level" | "mass_cn_level" => assert!(f64s(&without, name).iter().all(Option::is_none), "{name}"),
            "bitmask" | "mass_bitmask" => {
                let cleared: Vec<Option<i64>> = i64s(&theirs, name).iter().map(|m| m.map(|m| m & !32)).collect();
                assert_eq!(i64s(&without, name), cleared, "{name}");
            }
            _ => assert_eq!(without.column_by_name(name), theirs.column_by_name(name), "{name}"),
        }
    }
}

#[test]
fn dr17_input_and_s3_in_and_out() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    s3.put_file("dr17/allStar.parquet", &common::repo_root().join("examples/data/dr17_allstar_sample.parquet"));
    let out = s3
        .starflow()
        .args(["-q", "catalog", "--release", "dr17", &format!("s3://{BUCKET}/dr17/allStar.parquet"), &format!("s3://{BUCKET}/vac17")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same job on the local file gives the same files.
    let local = dir.path().join("vac17");
    let sample = common::repo_root().join("examples/data/dr17_allstar_sample.parquet");
    run_catalog(&["-q", "--release", "dr17", sample.to_str().unwrap(), local.to_str().unwrap()]);
    for file in FILES {
        let (remote, here) = (read_all(&s3.object_path(&format!("vac17/{file}"))), read_all(&local.join(file)));
        assert_eq!(remote.num_rows(), 200, "{file}");
        assert_eq!(remote, here, "{file}: S3 and local runs agree");
    }
    let summary = read_all(&local.join(FILES[0]));
    assert_eq!(kv_metadata(&local.join(FILES[0]))["label_release"], "dr17", "the DR17 view sets its release");
    assert_eq!(summary.column_by_name("sdss_id").unwrap().null_count(), 200, "DR17 has no sdss_id");
    assert!(f64s(&summary, "age").iter().filter(|a| a.is_some()).count() > 190, "almost every star gets an age");
}

#[test]
fn an_interrupted_or_failed_catalogue_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vac");
    // On one thread the whole bundled catalogue takes ~20 s: interrupt it after a few small batches have been encoded.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("starflow"))
        .args(["-q", "--threads", "1", "--batch-size", "64", "catalog", bundled_catalogue().to_str().unwrap(), out.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130), "interrupted");
    assert!(!out.exists(), "nothing left, not even the output directory the run made");

    // An input of neither release's columns fails before anything is written.
    let plain = dir.path().join("plain.parquet");
    common::write_parquet(&plain, 3);
    let output = starflow().args(["catalog", plain.to_str().unwrap(), out.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!out.exists());
}
