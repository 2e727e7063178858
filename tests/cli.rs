//! The `starflow` command line, run as a user runs it: every subcommand, output format and error class, asserting on
//! values, messages and exit codes.

mod common;

use std::io::Write;

use common::{bundled_catalogue, read_parquet, starflow, stdout_of};
use datafusion::arrow::array::{Array, AsArray, Float32Array};
use datafusion::arrow::datatypes::Float32Type;

/// Teff of every bundled star, read with the Parquet reader directly (the independent expectation).
fn bundled_teff() -> Vec<f32> {
    read_parquet(&bundled_catalogue())
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name("teff").unwrap().as_primitive::<Float32Type>().clone();
            col.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn sql_over_the_bundled_catalogue_counts_and_aggregates_correctly() {
    let teff = bundled_teff();
    let hot = teff.iter().filter(|t| **t > 4800.0).count();
    let max = teff.iter().cloned().fold(f32::MIN, f32::max);
    let sql = format!(
        "SELECT count(*) AS n, sum(CASE WHEN teff > 4800 THEN 1 ELSE 0 END) AS hot, max(teff) AS tmax FROM '{}'",
        bundled_catalogue().display()
    );
    let out = starflow().args(["--format-out", "csv", "sql", &sql]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout_of(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("n,hot,tmax"));
    let fields: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(fields[0].parse::<usize>().unwrap(), teff.len());
    assert_eq!(teff.len(), 6603);
    assert_eq!(fields[1].parse::<usize>().unwrap(), hot);
    assert_eq!(fields[2].parse::<f32>().unwrap(), max);
}

#[test]
fn registered_tables_views_show_tables_and_describe() {
    let table = format!("stars={}", bundled_catalogue().display());
    let out = starflow()
        .args(["--table", &table, "--format-out", "csv", "sql"])
        .arg("CREATE VIEW giants AS SELECT * FROM stars WHERE logg < 2.0; SELECT count(*) AS n FROM giants")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let logg = read_parquet(&bundled_catalogue())
        .iter()
        .map(|b| b.column_by_name("logg").unwrap().as_any().downcast_ref::<Float32Array>().unwrap().iter().filter(|v| v.unwrap() < 2.0).count())
        .sum::<usize>();
    assert_eq!(stdout_of(&out), format!("n\n{logg}\n"));

    let out = starflow().args(["--table", &table, "--format-out", "csv", "sql", "SHOW TABLES"]).output().unwrap();
    let text = stdout_of(&out);
    assert!(text.lines().any(|l| l.ends_with(",stars,BASE TABLE")), "{text}");

    let out = starflow().args(["--table", &table, "--format-out", "csv", "sql", "DESCRIBE stars"]).output().unwrap();
    let text = stdout_of(&out);
    assert!(text.contains("teff,Float32,YES"), "{text}");
    assert!(text.contains("sdss4_apogee_id,Utf8"), "{text}");
}

#[test]
fn run_substitutes_defines_and_refuses_undefined_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "-- a query file\nSELECT count(*) AS n FROM '${input}' WHERE teff > ${tmin:-0};\n").unwrap();
    let input = format!("input={}", bundled_catalogue().display());
    let out = starflow().args(["--format-out", "csv", "run"]).arg(&file).args(["--define", &input, "-D", "tmin=5000"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = bundled_teff().iter().filter(|t| **t > 5000.0).count();
    assert_eq!(stdout_of(&out), format!("n\n{expected}\n"));

    let out = starflow().arg("run").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("undefined variable ${input}: pass --define input=VALUE"));
}

#[test]
fn output_formats_stdout_and_files() {
    let sql = "SELECT * FROM (VALUES (1, 4.5, 'a'), (2, NULL, 'b')) AS t(id, age, name) ORDER BY id";
    let json = stdout_of(&starflow().args(["--format-out", "json", "sql", sql]).output().unwrap());
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, serde_json::json!([{"id":1,"age":4.5,"name":"a"},{"id":2,"name":"b"}]));
    let ndjson = stdout_of(&starflow().args(["--format-out", "ndjson", "sql", sql]).output().unwrap());
    assert_eq!(ndjson.lines().count(), 2);
    let table = stdout_of(&starflow().args(["sql", sql]).output().unwrap());
    assert!(table.contains("| id | age | name |") && table.contains("2 rows"), "{table}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    let out = starflow().args(["-o", path.to_str().unwrap(), "sql", sql]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote 2 rows to"));
    let batches = read_parquet(&path);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    let csv = dir.path().join("out.csv");
    starflow().args(["-q", "-o", csv.to_str().unwrap(), "sql", sql]).assert().success().stderr("");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "id,age,name\n1,4.5,a\n2,,b\n");
}

#[test]
fn shell_reads_statements_and_meta_commands() {
    let table = format!("stars={}", bundled_catalogue().display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("starflow"))
        .args(["--table", &table, "shell"])
        .env("STARFLOW_HISTORY", std::env::temp_dir().join("starflow-shell-test-history"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"SELECT 40 +\n 2 AS answer;\n\\dt\nSELEC oops;\n\\q\n").unwrap();
    let out = child.wait_with_output().unwrap();
    // Piped input is a script: a failed statement does not end it, but the exit code says it failed (SQL error, 3).
    assert_eq!(out.status.code(), Some(3));
    let text = stdout_of(&out);
    assert!(text.contains("| answer |") && text.contains("| 42     |"), "{text}");
    assert!(text.contains("| stars "), "\\dt lists tables: {text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SQL error: syntax error"), "errors do not end the shell");
}

/// (arguments, exit code, text the one-line message must contain)
fn assert_fails(args: &[&str], code: i32, message: &str) {
    let out = starflow().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: expected '{message}' in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn errors_are_one_clear_line_with_their_exit_code() {
    let cat = bundled_catalogue();
    let cat = cat.to_str().unwrap();
    assert_fails(&["sql", "SELEC 1"], 3, "SQL error: syntax error: ");
    assert_fails(&["sql", "SELECT * FROM nowhere"], 3, "nowhere' not found");
    assert_fails(&["sql", &format!("SELECT no_such_column FROM '{cat}'")], 3, "no_such_column");
    assert_fails(&["sql", "SELECT * FROM '/nonexistent/dir/file.parquet'"], 4, "data error:");
    assert_fails(&["--table", "t=/nonexistent/x.parquet", "sql", "SELECT 1"], 4, "data error:");
    assert_fails(&["--table", "t=catalogue.vot", "sql", "SELECT 1"], 4, "unsupported input format '.vot'");
    assert_fails(&["-o", "/proc/starflow/out.csv", "sql", "SELECT 1 AS x"], 5, "output error:");
    assert_fails(&["-o", "/tmp/out.unknown", "sql", "SELECT 1 AS x"], 2, "pass --format-out");
    // Argument errors are clap's first line (what is wrong), without the usage that clap prints after it.
    assert_fails(&["--memory-limit", "lots", "sql", "SELECT 1"], 2, "starflow: usage error: invalid value 'lots' for '--memory-limit <SIZE>'");
}

#[test]
fn syntax_errors_give_the_position() {
    let out = starflow().args(["sql", "SELECT 1;\nSELECT 2 +* 3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("found: * at Line: 2, Column: 11"), "{stderr}");
    let out = starflow().args(["sql", "SELECT * FROM t WHERE"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("found: EOF (at the end of the input)"), "{stderr}");
}

#[test]
fn a_cuda_request_on_a_machine_without_cuda_is_refused_not_run_on_the_cpu() {
    // These machines have no GPU and the CPU build of ONNX Runtime: the request must fail before any data is read.
    let out = starflow().args(["--device", "cuda", "sql", "SELECT 1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("device cuda:0 was requested but cannot be used"), "{stderr}");
    let out = starflow().args(["--device", "tpu", "sql", "SELECT 1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device 'tpu'"));
}

#[test]
fn models_and_functions_describe_what_is_served() {
    // Run from the repository (cargo's working directory for tests), a dev build finds its models and ONNX Runtime in
    // the checkout, by a rule applied at run time, and says so.
    let root = common::repo_root();
    let out = starflow().env_remove("ORT_DYLIB_PATH").arg("models").output().unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checkout = "(found by: the source checkout holding the working directory)";
    assert!(text.contains(&format!("models directory: {} {checkout}\n", root.join("models").display())), "{text}");
    assert!(text.contains(&format!("onnxruntime: {} {checkout}\n", root.join(".ort/libonnxruntime.so.1.31.1").display())), "{text}");
    assert!(text.contains("device: cpu"), "{text}");
    for name in ["\nage ", "\nmass ", "\nage_paper ", "\nmass_paper "] {
        assert!(text.contains(name), "{text}");
    }
    assert_eq!(text.matches("session:   ok on cpu").count(), 4, "{text}");
    assert_eq!(text.matches("method:    v2 (label releases dr14, dr16, dr17, dr19; default dr19)").count(), 2, "{text}");
    assert_eq!(text.matches("method:    paper\n").count(), 2, "{text}");
    assert!(text.contains("grid 0..14 (250 points)") && text.contains("grid 0..3 (250 points)"), "{text}");
    assert_eq!(text.matches("C-N plane: 20 x 20 cells, 10 target points; CN_ATYPICAL above level 0.").count(), 2, "{text}");
    assert_eq!(text.matches("missing:   c_fe (24 values), logg (24 values), n_fe (24 values) integrated out").count(), 2, "{text}");
    let models = root.join("models");
    let by_env = stdout_of(&starflow().env("STARFLOW_MODELS", &models).arg("models").output().unwrap());
    assert!(by_env.contains(&format!("models directory: {} (found by: $STARFLOW_MODELS)\n", models.display())), "{by_env}");
    let by_flag = stdout_of(&starflow().env("STARFLOW_MODELS", "/nonexistent").arg("--models").arg(&models).arg("models").output().unwrap());
    assert!(by_flag.contains(&format!("models directory: {} (found by: --models)\n", models.display())), "{by_flag}");

    let out = starflow().arg("functions").output().unwrap();
    let text = stdout_of(&out);
    for f in [
        "starflow_age", "starflow_mass", "starflow_age_posterior", "starflow_mass_posterior", "starflow_grid", "starflow_density",
        "starflow_flags", "starflow_flag_names", "starflow_estimate", "starflow_cn_posterior", "starflow_cn_grid",
    ] {
        assert!(text.contains(&format!("## {f}\n")), "{f} documented");
    }
    assert!(text.contains("### Arguments") && text.contains("### Example"));
}

#[test]
fn the_main_job_queries_run_on_dr19_and_dr17_inputs() {
    let root = common::repo_root();
    let dir = tempfile::tempdir().unwrap();
    for (view, input, rows) in [
        ("queries/dr17_inputs.sql", "examples/data/dr17_allstar_sample.parquet", 200usize),
        ("queries/dr19_inputs.sql", "examples/data/astraAllStarASPCAP_apokasc3.parquet", 6603),
    ] {
        // The DR19 file is large for a test: its first 300 stars (a view over the view) make the point.
        let limit = dir.path().join("limit.sql");
        std::fs::write(&limit, "CREATE VIEW limited AS SELECT * FROM starflow_input LIMIT 300;").unwrap();
        let query = std::fs::read_to_string(root.join("queries/ages_masses.sql")).unwrap().replace("FROM starflow_input", "FROM limited");
        let query_file = dir.path().join("q.sql");
        std::fs::write(&query_file, query).unwrap();
        let out_file = dir.path().join("out.parquet");
        let out = starflow()
            .current_dir(&root)
            .args(["-q", "run", view])
            .arg(&limit)
            .arg(&query_file)
            .args(["--define", &format!("input={input}"), "-o", out_file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{view}: {}", String::from_utf8_lossy(&out.stderr));
        let batches = read_parquet(&out_file);
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n, rows.min(300), "{view}");
        for b in &batches {
            for column in ["age", "mass", "age_bitmask"] {
                assert_eq!(b.column_by_name(column).unwrap().null_count(), 0, "{view}: every good star has {column}");
            }
        }
    }
}
