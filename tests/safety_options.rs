//! Issue 13, classes 7 (options), 8 (secrets), 9 (piped shell) and 10 (messages): every numeric option has a bound
//! and a usage error beyond it; credentials and query strings of URLs appear in no message; a piped shell runs every
//! statement and fails when one fails; `SET starflow.*` values that cannot be used are `invalid setting`, exit 3; CSV
//! values that do not parse and non-UTF-8 text are data errors; NaN in JSON output; huge cells in the table display.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bundled_catalogue, outcome, starflow, starflow_std};

/// An empty models directory: plain SQL runs without loading any model.
fn no_models() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn numeric_options_beyond_their_bounds_are_usage_errors() {
    let models = no_models();
    let cases: &[(&str, &str)] = &[
        ("--threads", "20000"),
        ("--threads", "4294967296"),
        ("--threads", "0"),
        ("--threads", "-1"),
        ("--batch-size", "0"),
        ("--batch-size", "18446744073709551616"),
        ("--max-rows", "100001"),
        ("--io-retries", "4294967295"),
        ("--io-timeout", "1e18"),
        ("--io-timeout", "-5"),
        ("--io-timeout", "nan"),
        ("--connect-timeout", "3601"),
        ("--memory-limit", "0"),
        ("--memory-limit", "1e30G"),
    ];
    for (flag, value) in cases {
        let out = starflow().args(["--models", models.path().to_str().unwrap(), flag, value, "sql", "SELECT 1"]).output().unwrap();
        let (code, stdout, err) = outcome(&out);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag) || err.contains(value), "{flag} {value}: {err}");
        assert!(stdout.is_empty() && !err.contains("panicked"), "{flag} {value}");
    }
    let out = starflow_std().env("STARFLOW_THREADS", "99999").args(["sql", "SELECT 1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "STARFLOW_THREADS is bounded too");
    // The bounds themselves are accepted.
    let out = starflow()
        .args(["--models", models.path().to_str().unwrap(), "--threads", "256", "--batch-size", "65536", "--max-rows", "100000"])
        .args(["--io-retries", "100", "--io-timeout", "86400", "--connect-timeout", "3600", "--memory-limit", "1M"])
        .args(["--format-out", "csv", "sql", "SELECT 1 AS one"])
        .output()
        .unwrap();
    assert_eq!(outcome(&out), (Some(0), "one\n1\n".to_string(), String::new()));
}

#[test]
fn url_credentials_and_query_strings_are_redacted_in_every_message() {
    const SECRET: &str = "PASSWORD-hunter2";
    let endpoint = format!("http://ak:{SECRET}@127.0.0.1:1");
    let runs = [
        starflow_std()
            .env("AWS_ACCESS_KEY_ID", "ak")
            .env("AWS_SECRET_ACCESS_KEY", "sk")
            .args(["--io-retries", "0", "--s3-endpoint", &endpoint, "sql", "SELECT count(*) FROM 's3://bucket/k.parquet'"])
            .output()
            .unwrap(),
        starflow_std()
            .env("AWS_ACCESS_KEY_ID", "ak")
            .env("AWS_SECRET_ACCESS_KEY", "sk")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .args(["--io-retries", "0", "-o", "s3://bucket/out.csv", "sql", "SELECT 1"])
            .output()
            .unwrap(),
        starflow().args(["--table", &format!("t=https://example.invalid/x.fits?sig={SECRET}"), "sql", "SELECT 1"]).output().unwrap(),
        starflow().args(["--io-retries", "0", "sql", &format!("SELECT * FROM 'http://u:{SECRET}@127.0.0.1:1/x.parquet'")]).output().unwrap(),
        starflow().args(["--io-retries", "0", "sql", &format!("SELECT * FROM 'http://127.0.0.1:1/x.parquet?sig={SECRET}'")]).output().unwrap(),
    ];
    for (i, out) in runs.iter().enumerate() {
        let (code, stdout, err) = outcome(out);
        assert!(matches!(code, Some(2..=5)), "run {i}: {err}");
        assert!(!err.contains(SECRET) && !stdout.contains(SECRET), "run {i} shows the secret: {err}");
        assert_eq!(err.lines().count(), 1, "run {i}: {err}");
    }
    assert!(outcome(&runs[0]).2.contains("cannot reach the storage endpoint"), "{}", outcome(&runs[0]).2);
    assert!(outcome(&runs[0]).2.contains("***@127.0.0.1:1") || !outcome(&runs[0]).2.contains('@'), "{}", outcome(&runs[0]).2);
}

fn shell(input: impl AsRef<[u8]>) -> (Option<i32>, String, String) {
    let table = format!("stars={}", bundled_catalogue().display());
    let mut child = starflow_std()
        .args(["--table", &table, "--format-out", "csv", "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_ref()).unwrap();
    outcome(&child.wait_with_output().unwrap())
}

#[test]
fn a_piped_shell_runs_every_statement_and_fails_when_one_fails() {
    assert_eq!(shell("SELECT 4 AS d; -- trailing\n"), (Some(0), "d\n4\n".to_string(), String::new()));
    assert_eq!(shell("SELECT 1 AS a;\n/* two */ SELECT 2 AS b"), (Some(0), "a\n1\nb\n2\n".to_string(), String::new()));
    assert_eq!(shell("SELECT ';' AS s; SELECT count(*) AS n FROM stars\n-- done\n"), (Some(0), "s\n;\nn\n6603\n".to_string(), String::new()));
    assert_eq!(shell("-- nothing to run\n\n"), (Some(0), String::new(), String::new()));

    let (code, stdout, err) = shell("SELECT 1 AS a;\nSELECT nope FROM stars;\nSELECT 3 AS c;\nSELECT 'unterminated");
    assert_eq!(code, Some(3), "the first failure's class: {err}");
    assert_eq!(stdout, "a\n1\nc\n3\n", "statements after a failure still run");
    assert!(err.contains("nope") && err.contains("unterminated") || err.contains("Unterminated"), "{err}");
    assert!(err.lines().last().unwrap().contains("2 statements failed"), "{err}");

    // Text that is not UTF-8 stops the script: a data error naming the line, after the statements before it ran.
    assert_eq!(
        shell(b"SELECT 1 AS a;\nSELECT '\xff' AS b;\nSELECT 3 AS c;\n"),
        (Some(4), "a\n1\n".to_string(), "starflow: data error: shell input, line 2: not UTF-8 text\n".to_string())
    );

    let (code, stdout, _) = shell("\\dt\nSELECT 5 AS e\n");
    assert_eq!(code, Some(0));
    assert!(stdout.contains(",stars,BASE TABLE") && stdout.ends_with("e\n5\n"), "{stdout}");
}

#[test]
fn settings_that_cannot_be_used_are_invalid_settings() {
    for value in ["-1", "'x'", "1e9", "0", "100000", "18446744073709551616"] {
        let out = starflow().args(["sql", &format!("SET starflow.draws = {value}")]).output().unwrap();
        let (code, _, err) = outcome(&out);
        assert_eq!(code, Some(3), "{value}: {err}");
        assert!(err.starts_with("starflow: SQL error: invalid setting: starflow.draws = "), "{value}: {err}");
        assert_eq!(err.lines().count(), 1, "{value}: {err}");
    }
    // DataFusion settings that size buffers, channels or thread pools are bounded (2^32 rows per batch aborted the
    // process on an allocation; a channel of 2^62 permits panicked).
    for (setting, max) in [
        ("datafusion.execution.batch_size", 65536),
        ("datafusion.execution.target_partitions", 256),
        ("datafusion.execution.hash_join_buffering_capacity", 1024),
        ("datafusion.execution.parquet.maximum_buffered_record_batches_per_stream", 1024),
        ("datafusion.execution.max_buffered_batches_per_output_file", 1024),
        ("datafusion.execution.minimum_parallel_output_files", 256),
    ] {
        let sql = format!("SET {setting} = 4611686018427387904; SELECT 1");
        let out = starflow().args(["sql", &sql]).output().unwrap();
        let (code, stdout, err) = outcome(&out);
        assert_eq!((code, stdout.as_str()), (Some(3), ""), "{setting}: {err}");
        assert_eq!(err, format!("starflow: SQL error: invalid setting: {setting} = 4611686018427387904: at most {max}\n"));
        let out = starflow().args(["--format-out", "csv", "sql", &format!("SET {setting} = {max}; SELECT 1 AS one")]).output().unwrap();
        assert_eq!(outcome(&out), (Some(0), "one\n1\n".to_string(), String::new()), "{setting} = {max}");
    }
    let out = starflow().args(["sql", "SET datafusion.execution.batch_size = 'many'"]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(3), "{}", outcome(&out).2);
    assert!(outcome(&out).2.contains("invalid setting: datafusion.execution.batch_size = many"), "{}", outcome(&out).2);
}

#[test]
fn csv_values_that_do_not_parse_and_text_that_is_not_utf8_are_data_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Beyond the 1,000 rows the types are inferred from.
    let mut text = String::from("id,x\n");
    for i in 0..3000 {
        text.push_str(&format!("{i},{}\n", if i == 2500 { "n/a".to_string() } else { format!("{i}.5") }));
    }
    let late = dir.path().join("late.csv");
    std::fs::write(&late, text).unwrap();
    let out = starflow().args(["--format-out", "csv", "sql", &format!("SELECT sum(x) FROM '{}'", late.display())]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("late.csv: ") && err.contains("n/a") && err.lines().count() == 1, "names the file: {err}");

    let latin1 = dir.path().join("latin1.csv");
    let mut bytes = b"id,name\n1,star\n2,".to_vec();
    bytes.extend_from_slice(&[0x53, 0xe9, 0x72, 0xff]);
    bytes.extend_from_slice(b"\n");
    std::fs::write(&latin1, bytes).unwrap();
    let out = starflow().args(["--format-out", "csv", "sql", &format!("SELECT max(name) FROM '{}'", latin1.display())]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.to_lowercase().contains("utf"), "{err}");
    // A SQL cast that fails stays the query's error (exit 1), not the data's.
    let out = starflow().args(["sql", "SELECT CAST('n/a' AS DOUBLE)"]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(1), "{}", outcome(&out).2);
}

#[test]
fn json_output_writes_nan_and_infinities_as_text() {
    let sql = "SELECT CAST(x AS DOUBLE) AS x FROM (VALUES ('NaN'), ('inf'), ('-inf'), ('0.25'), (NULL)) AS t(x)";
    let out = starflow().args(["--format-out", "ndjson", "sql", sql]).output().unwrap();
    assert_eq!(
        outcome(&out),
        (Some(0), "{\"x\":\"NaN\"}\n{\"x\":\"Infinity\"}\n{\"x\":\"-Infinity\"}\n{\"x\":0.25}\n{}\n".to_string(), String::new())
    );
    let out = starflow().args(["--format-out", "json", "sql", sql]).output().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&outcome(&out).1).unwrap();
    assert_eq!(parsed, serde_json::json!([{"x": "NaN"}, {"x": "Infinity"}, {"x": "-Infinity"}, {"x": 0.25}, {}]));
}

#[test]
fn a_table_of_huge_cells_is_cut_before_it_is_laid_out() {
    let started = Instant::now();
    let out = starflow()
        .args(["--max-rows", "1", "sql", "SELECT repeat('x', 20000000) AS a, repeat('é', 20000000) AS b, repeat('y', 20000000) AS c FROM (VALUES (1), (2))"])
        .output()
        .unwrap();
    let (code, stdout, err) = outcome(&out);
    assert_eq!(code, Some(0), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(stdout.contains(&format!("{}…", "x".repeat(200))) && stdout.contains(&format!("{}…", "é".repeat(200))), "{}", &stdout[..400.min(stdout.len())]);
    assert!(stdout.len() < 10_000, "{} bytes", stdout.len());
    assert!(stdout.ends_with("2 rows (first 1 shown; --max-rows, or --format-out csv / -o FILE for all)\n"), "{stdout}");
}
