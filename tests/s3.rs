//! Object storage through a real S3-compatible server (s3s-fs on 127.0.0.1, with signature checking): queries on
//! s3:// URLs, tables, COPY TO and --output, and the errors a user meets.

mod common;

use common::{BUCKET, S3Server, bundled_catalogue, read_parquet, stdout_of, write_parquet};

fn csv_rows(out: &std::process::Output) -> Vec<String> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    stdout_of(out).lines().skip(1).map(String::from).collect()
}

#[test]
fn queries_read_s3_urls_tables_and_external_tables() {
    let s3 = S3Server::start();
    s3.put_file("dr19/astraAllStarASPCAP.parquet", &bundled_catalogue());
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("part-0.parquet"), 1000);
    s3.put_file("gen/part-0.parquet", &dir.path().join("part-0.parquet"));
    write_parquet(&dir.path().join("part-1.parquet"), 500);
    s3.put_file("gen/part-1.parquet", &dir.path().join("part-1.parquet"));

    let url = format!("s3://{BUCKET}/dr19/astraAllStarASPCAP.parquet");
    let out = s3.starflow().args(["--format-out", "csv", "sql"])
        .arg(format!("SELECT count(*), min(sdss4_apogee_id) FROM '{url}' WHERE teff > 4000")).output().unwrap();
    let local = common::starflow().args(["--format-out", "csv", "sql"])
        .arg(format!("SELECT count(*), min(sdss4_apogee_id) FROM '{}' WHERE teff > 4000", bundled_catalogue().display())).output().unwrap();
    assert_eq!(csv_rows(&out), csv_rows(&local), "S3 and local reads agree");

    // A directory of files as one table: 1000 + 500 rows, ids 0..999 and 0..499.
    let out = s3.starflow().args(["--table", &format!("gen=s3://{BUCKET}/gen/"), "--format-out", "csv", "sql", "SELECT count(*), sum(id), max(x) FROM gen"]).output().unwrap();
    assert_eq!(csv_rows(&out), vec![format!("1500,{},499.5", 999 * 1000 / 2 + 499 * 500 / 2)]);

    let out = s3.starflow().args(["--format-out", "csv", "sql"])
        .arg(format!("CREATE EXTERNAL TABLE g STORED AS PARQUET LOCATION 's3://{BUCKET}/gen/part-1.parquet'; SELECT count(*), max(name) FROM g"))
        .output().unwrap();
    assert_eq!(csv_rows(&out), vec!["500,star99".to_string()]);
}

#[test]
fn copy_to_and_output_write_complete_objects() {
    let s3 = S3Server::start();
    s3.put_file("in/cat.parquet", &bundled_catalogue());
    let out = s3.starflow().args(["--format-out", "csv", "sql"])
        .arg(format!("COPY (SELECT sdss4_apogee_id, teff FROM 's3://{BUCKET}/in/cat.parquet' WHERE logg < 2.5) TO 's3://{BUCKET}/out/copy.parquet' STORED AS PARQUET"))
        .output().unwrap();
    let copied: usize = csv_rows(&out)[0].parse().unwrap();
    let expected = common::starflow().args(["--format-out", "csv", "sql"])
        .arg(format!("SELECT count(*) FROM '{}' WHERE logg < 2.5", bundled_catalogue().display())).output().unwrap();
    assert_eq!(copied.to_string(), csv_rows(&expected)[0]);
    let batches = read_parquet(&s3.object_path("out/copy.parquet"));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), copied);

    let out = s3.starflow().args(["-o", &format!("s3://{BUCKET}/out/result.csv"), "sql"])
        .arg(format!("SELECT count(*) AS n FROM 's3://{BUCKET}/in/cat.parquet'")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(s3.object_path("out/result.csv")).unwrap(), "n\n6603\n");
    // Read it back through S3 as a user would.
    let out = s3.starflow().args(["--format-out", "csv", "sql", &format!("SELECT n FROM 's3://{BUCKET}/out/result.csv'")]).output().unwrap();
    assert_eq!(csv_rows(&out), vec!["6603".to_string()]);
}

fn assert_s3_error(cmd: &mut assert_cmd::Command, message: &str) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(message), "expected '{message}' in: {stderr}");
    assert!(!stderr.contains(common::SECRET_KEY), "the secret never appears: {stderr}");
}

#[test]
fn missing_keys_bad_credentials_and_unreachable_endpoints_are_clear_errors() {
    let mut s3 = S3Server::start();
    s3.put_file("in/cat.parquet", &bundled_catalogue());
    assert_s3_error(
        s3.starflow().args(["sql", &format!("SELECT * FROM 's3://{BUCKET}/in/missing.parquet'")]),
        "data error: not found: s3://catalogues/in/missing.parquet",
    );
    assert_s3_error(s3.starflow().args(["sql", "SELECT * FROM 's3://no-such-bucket/x.parquet'"]), "data error: no such bucket:");
    assert_s3_error(
        s3.starflow().env("AWS_SECRET_ACCESS_KEY", "wrong-secret").args(["--io-retries", "0", "sql", &format!("SELECT count(*) FROM 's3://{BUCKET}/in/cat.parquet'")]),
        "data error: access denied to in/cat.parquet",
    );
    assert_s3_error(
        common::starflow().args(["--s3-endpoint", &s3.endpoint, "sql", &format!("SELECT * FROM 's3://{BUCKET}/in/cat.parquet'")]),
        "no S3 credentials for bucket 'catalogues'",
    );
    let endpoint = s3.endpoint.clone();
    s3.stop();
    let started = std::time::Instant::now();
    assert_s3_error(
        common::starflow()
            .env("AWS_ACCESS_KEY_ID", common::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", common::SECRET_KEY)
            .args(["--s3-endpoint", &endpoint, "--io-retries", "1", "--io-timeout", "2", "--connect-timeout", "1", "sql"])
            .arg(format!("SELECT * FROM 's3://{BUCKET}/in/cat.parquet'")),
        "cannot reach the storage endpoint",
    );
    assert!(started.elapsed().as_secs() < 30, "retries and time-outs are bounded");
}
