//! The survey file behind `starflow_input` (`--input`, `starflow catalog`): its release told from its columns, DR17's
//! -9999 sentinels read as missing, `--keep` columns carried row by row, seed and draws on the command line and in
//! every output, and the hints a user gets when a file and a release do not match.

mod common;

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use common::{bundled_catalogue, read_parquet, repo_root, starflow, stdout_of};

fn dr17_sample() -> std::path::PathBuf {
    repo_root().join("examples/data/dr17_allstar_sample.parquet")
}

fn read_all(path: &Path) -> RecordBatch {
    let batches = read_parquet(path);
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let column = datafusion::arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Float64).unwrap();
    column.as_primitive::<Float64Type>().iter().collect()
}

fn i64s(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    batch.column_by_name(name).unwrap().as_primitive::<Int64Type>().iter().collect()
}

fn kv_metadata(path: &Path) -> HashMap<String, String> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let kv = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    kv.into_iter().filter_map(|kv| Some((kv.key, kv.value?))).collect()
}

/// Five DR17 sample stars in APOGEE_ID order: 0 as they are, 1 with TEFF = -9999, 2 with LOGG = -9999, 3 with
/// FE_H_ERR = -9999, 4 as they are.
fn write_sentinels(path: &Path) {
    let sentinel = |column: &str, row: i64| format!("CASE WHEN rn = {row} THEN -9999 ELSE \"{column}\" END AS \"{column}\"");
    let sql = format!(
        "SELECT \"APOGEE_ID\", {}, {}, \"TEFF_ERR\", \"LOGG_ERR\", \"FE_H\", {}, \"C_FE\", \"C_FE_ERR\", \"N_FE\", \
         \"N_FE_ERR\", \"ASPCAPFLAG\" FROM (SELECT *, row_number() OVER (ORDER BY \"APOGEE_ID\") - 1 AS rn FROM '{}') \
         WHERE rn < 5 ORDER BY rn",
        sentinel("TEFF", 1),
        sentinel("LOGG", 2),
        sentinel("FE_H_ERR", 3),
        dr17_sample().display()
    );
    starflow().args(["--quiet", "-o"]).arg(path).args(["sql", &sql]).assert().success();
}

#[test]
fn dr17_is_told_from_its_columns_and_its_sentinels_are_missing_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sentinels.parquet");
    write_sentinels(&input);
    let out = dir.path().join("vac");
    starflow().args(["--quiet", "catalog"]).arg(&input).arg(&out).assert().success();
    let summary = read_all(&out.join("StarFlow_summary.parquet"));
    let (age, density, bitmask) = (f64s(&summary, "age"), f64s(&summary, "training_density"), i64s(&summary, "bitmask"));
    assert!(age[0].is_some() && age[4].is_some(), "{age:?}");
    // a missing Teff or error: BAD_INPUT with no numbers, not a star at -9999 K (LOW_DENSITY + OUT_OF_RANGE, density 0)
    for row in [1, 3] {
        assert_eq!((age[row], density[row], bitmask[row]), (None, None, Some(4)), "row {row}");
    }
    // a missing log g alone is integrated out (v2): an age, flagged LABEL_MARGINALISED
    assert!(age[2].is_some() && bitmask[2].unwrap() & 64 == 64 && bitmask[2].unwrap() & 4 == 0, "{:?}", bitmask[2]);
    assert_eq!(kv_metadata(&out.join("StarFlow_summary.parquet"))["label_release"], "dr17");
}

#[test]
fn a_file_of_the_other_release_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vac");
    let refused = starflow().args(["--quiet", "catalog", "--release", "dr19"]).arg(dr17_sample()).arg(&out).output().unwrap();
    assert_eq!(refused.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not a DR19 file: it lacks sdss_id") && stderr.contains("pass --release dr17"), "{stderr}");
    assert!(!out.join("StarFlow_summary.parquet").exists());
    // The DR19 view's SQL file run on a DR17 file: the SQL error says which view or option fits.
    let view = repo_root().join("queries/dr19_inputs.sql");
    let sql = dir.path().join("count.sql");
    std::fs::write(&sql, "SELECT count(*) FROM starflow_input").unwrap();
    let wrong = starflow().args(["--quiet", "run"]).arg(&view).arg(&sql).arg("--define").arg(format!("input={}", dr17_sample().display())).output().unwrap();
    assert_eq!(wrong.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("No field named sdss_id") && stderr.contains("queries/dr17_inputs.sql"), "{stderr}");
    // Neither release's columns: a data error listing what each lacks.
    let plain = dir.path().join("plain.parquet");
    common::write_parquet(&plain, 3);
    let neither = starflow().args(["--quiet", "--input"]).arg(&plain).args(["sql", "SELECT 1"]).output().unwrap();
    assert_eq!(neither.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&neither.stderr).contains("cannot tell the data release"));
}

#[test]
fn input_defines_the_view_and_the_survey_table() {
    let out = starflow()
        .args(["--quiet", "--format-out", "csv", "--input"])
        .arg(dr17_sample())
        .args(["sql", "SELECT (SELECT count(*) FROM starflow_input) AS v, (SELECT count(*) FROM survey) AS s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_of(&out), "v,s\n200,200\n");
    // `\d` shows units and descriptions (the view's columns have no stored metadata: starflow knows their names)
    let described = starflow()
        .args(["--quiet", "--input"])
        .arg(bundled_catalogue())
        .arg("shell")
        .write_stdin("\\d starflow_input\n")
        .output()
        .unwrap();
    let text = stdout_of(&described);
    let teff = text.lines().find(|l| l.starts_with("| teff ")).unwrap_or_else(|| panic!("{text}"));
    assert!(teff.contains("| K ") && teff.contains("Effective temperature"), "{teff}");
    assert!(text.contains("| unit ") && text.contains("| description "), "{text}");
}

#[test]
fn keep_carries_input_columns_row_matched_and_seed_and_draws_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("slice.parquet");
    let slice = format!("SELECT * FROM '{}' LIMIT 24", dr17_sample().display());
    starflow().args(["--quiet", "--threads", "1", "-o"]).arg(&input).args(["sql", &slice]).assert().success();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    starflow().args(["--quiet", "catalog", "--keep", "TEFF,LOGG"]).arg(&input).arg(&a).assert().success();
    starflow().args(["--quiet", "--seed", "7", "--draws", "60", "catalog"]).arg(&input).arg(&b).assert().success();
    let (source, kept, other) = (read_all(&input), read_all(&a.join("StarFlow_summary.parquet")), read_all(&b.join("StarFlow_summary.parquet")));
    assert_eq!(f64s(&kept, "TEFF"), f64s(&source, "TEFF"), "row-matched to the input");
    assert_eq!(f64s(&kept, "LOGG"), f64s(&source, "LOGG"));
    let names: Vec<String> = kept.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(&names[names.len() - 2..], ["TEFF", "LOGG"], "kept columns come last");
    // Recorded: the seed and the draws (the models' default unless given).
    let (meta_a, meta_b) = (kv_metadata(&a.join("StarFlow_summary.parquet")), kv_metadata(&b.join("StarFlow_summary.parquet")));
    assert_eq!((meta_a["seed"].as_str(), meta_a["draws"].as_str()), ("20251123", "50"));
    assert_eq!((meta_b["seed"].as_str(), meta_b["draws"].as_str()), ("7", "60"));
    // Another seed and draw count move only the stars that are drawn; under DR17 labels some are one flow pass.
    let (age_a, age_b) = (f64s(&kept, "age_median"), f64s(&other, "age_median"));
    let moved = age_a.iter().zip(&age_b).filter(|(x, y)| x != y).count();
    assert!(moved > 0 && moved < age_a.len(), "{moved} of {} moved", age_a.len());
    // The density's percentile: 0-100, LOW_DENSITY exactly below 5.
    let (pct, bits) = (f64s(&kept, "training_density_percentile"), i64s(&kept, "bitmask"));
    for (p, b) in pct.iter().zip(&bits) {
        let (p, b) = (p.unwrap(), b.unwrap());
        assert!((0.0..=100.0).contains(&p) && ((b & 1 == 1) == (p < 5.0)), "{p} {b}");
    }
    // Bad --keep lists touch nothing.
    for (keep, message) in [("age", "the summary already has a column 'age'"), ("TEFF,TEFF", "named twice"), ("teff", "has no column 'teff'")] {
        let out = starflow().args(["--quiet", "catalog", "--keep", keep]).arg(&input).arg(dir.path().join("c")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{keep}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{keep}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!dir.path().join("c/StarFlow_summary.parquet").exists());
}

#[test]
fn query_outputs_record_the_seed_and_draws_and_draws_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ages.parquet");
    starflow()
        .args(["--quiet", "--draws", "10", "--seed", "3", "--input"])
        .arg(dr17_sample())
        .arg("-o")
        .arg(&out)
        .args(["sql", "SELECT starflow_age(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)['age'] AS age FROM starflow_input LIMIT 3"])
        .assert()
        .success();
    let meta = kv_metadata(&out);
    assert_eq!((meta["seed"].as_str(), meta["draws"].as_str(), meta["label_release"].as_str()), ("3", "10", "dr17"));
    for draws in ["0", "40001", "x"] {
        let refused = starflow().args(["--draws", draws, "models"]).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "--draws {draws}");
    }
}
