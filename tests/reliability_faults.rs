//! Object-store faults against the real S3 test server (s3s-fs), injected by a proxy in front of it
//! (tests/common/fault_proxy.rs; all traffic on 127.0.0.1): transient errors are retried within --io-retries and the
//! answer is right; permanent ones fail with exit code 4 (reads) or 5 (writes), a clear message and a bounded number of
//! attempts in bounded time; an upload that fails leaves nothing under its final key (nor does a catalogue, as a set);
//! the server stopping mid-query fails the query cleanly. The secret key appears in no output, error or EXPLAIN.

mod common;

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Request};
use common::{BUCKET, S3Server, assert_no_secret, bundled_catalogue, stdout_of};

const DATA: &str = "in/cat.parquet";
/// The bundled catalogue's row count and sum of teff (a read of the whole file), and the StarFlow ages of 12 stars.
const QUERY: &str = "SELECT count(*) AS n, sum(teff) AS teff FROM 's3://catalogues/in/cat.parquet'; \
    SELECT sdss4_apogee_id, starflow_age(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_h - fe_h, sqrt(e_c_h * e_c_h + e_fe_h * e_fe_h), \
    n_h - fe_h, sqrt(e_n_h * e_n_h + e_fe_h * e_fe_h))['age'] AS age \
    FROM (SELECT * FROM 's3://catalogues/in/cat.parquet' WHERE sdss4_apogee_id IS NOT NULL ORDER BY sdss4_apogee_id LIMIT 12) \
    ORDER BY sdss4_apogee_id";

fn server() -> S3Server {
    let s3 = S3Server::start();
    s3.put_file(DATA, &bundled_catalogue());
    s3
}

/// `QUERY` through the proxy (with `args` before the subcommand).
fn query(s3: &S3Server, proxy: &FaultProxy, args: &[&str]) -> Output {
    let out = s3.starflow_via(&proxy.endpoint).args(args).args(["-q", "--format-out", "csv", "sql", QUERY]).output().unwrap();
    assert_no_secret(&out);
    out
}

/// The first `n` requests matching `pred` get `fault`; the rest are forwarded.
fn first(n: usize, fault: Fault, pred: impl Fn(&Request) -> bool + Send + Sync + 'static) -> impl Fn(&Request) -> Fault + Send + Sync {
    let seen = AtomicUsize::new(0);
    move |r| if pred(r) && seen.fetch_add(1, Ordering::SeqCst) < n { fault } else { Fault::Forward }
}

fn data_get(r: &Request) -> bool {
    r.method == "GET" && r.is_for(BUCKET, DATA)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn transient_faults_are_retried_and_the_answer_is_right() {
    let s3 = server();
    let clean = FaultProxy::start(&s3.endpoint, |_: &Request| Fault::Forward);
    let expected = query(&s3, &clean, &[]);
    assert!(expected.status.success(), "{}", stderr(&expected));
    assert_eq!(stdout_of(&expected).lines().count(), 2 + 13, "two results: {}", stdout_of(&expected));
    for (name, fault, on_data) in [
        ("503 on reads", Fault::Status(503), true),
        ("500 on reads", Fault::Status(500), true),
        ("connection reset on reads", Fault::Reset, true),
        ("response cut mid-body on reads", Fault::CutResponse, true),
        ("503 on the first requests (planning)", Fault::Status(503), false),
    ] {
        let proxy = FaultProxy::start(&s3.endpoint, first(2, fault, move |r| !on_data || data_get(r)));
        let out = query(&s3, &proxy, &["--io-retries", "3"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(stdout_of(&out), stdout_of(&expected), "{name}: the same answer");
        assert_eq!(proxy.count(fault, |_| true), 2, "{name}: two faults injected");
    }
}

/// Runs `args` through a proxy applying `rule` and checks a clean failure: exit `code`, one line with `message`, at
/// most `attempts` requests faulted, within `limit`.
fn assert_fails(s3: &S3Server, rule: impl Fn(&Request) -> Fault + Send + Sync + 'static, args: &[&str], code: i32, message: &str, attempts: usize, limit: Duration) -> FaultProxy {
    let proxy = FaultProxy::start(&s3.endpoint, rule);
    let started = Instant::now();
    let out = s3.starflow_via(&proxy.endpoint).args(args).output().unwrap();
    let elapsed = started.elapsed();
    assert_no_secret(&out);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
    assert!(text.contains(message), "{args:?}: expected '{message}' in: {text}");
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    let faulted = proxy.log().iter().filter(|(_, f)| *f != Fault::Forward).count();
    assert!((1..=attempts).contains(&faulted), "{args:?}: {faulted} faulted requests, at most {attempts}: {:?}", proxy.log());
    assert!(elapsed < limit, "{args:?}: failed after {elapsed:?}, allowed {limit:?}");
    proxy
}

#[test]
fn permanent_read_faults_fail_with_exit_4_after_bounded_attempts() {
    let s3 = server();
    let sql = ["sql", "SELECT count(*) FROM 's3://catalogues/in/cat.parquet'"];
    let with = |retries: &'static str| {
        let mut args = vec!["-q", "--io-retries", retries, "--io-timeout", "1", "--connect-timeout", "1"];
        args.extend(sql);
        args
    };
    let on_data = |fault| move |r: &Request| if data_get(r) { fault } else { Fault::Forward };
    let bound = Duration::from_secs(20);
    // Server errors are retried: 1 + 2 attempts, then the status and body in the message.
    assert_fails(&s3, on_data(Fault::Status(503)), &with("2"), 4, "after 2 retries, max_retries: 2", 3, bound);
    assert_fails(&s3, on_data(Fault::Status(503)), &with("0"), 4, "503 Service Unavailable", 1, bound);
    assert_fails(&s3, on_data(Fault::Reset), &with("2"), 4, "cannot reach the storage endpoint", 3, bound);
    // A server that never answers: each attempt ends at --io-timeout.
    let proxy = assert_fails(&s3, on_data(Fault::Hold), &with("1"), 4, "timed out", 2, bound);
    proxy.release();
    // Client errors are not retried.
    assert_fails(&s3, on_data(Fault::Status(403)), &with("3"), 4, "access denied to in/cat.parquet", 1, bound);
    assert_fails(&s3, on_data(Fault::Status(404)), &with("3"), 4, "not found", 1, bound);
    // Planning fails the same way when every request fails; a URL table that cannot be opened is opened once more to
    // report why (engine.rs), so twice 1 + 2 attempts.
    assert_fails(&s3, |_: &Request| Fault::Status(500), &with("2"), 4, "500", 6, bound);
}

/// The objects of the bucket (s3s-fs keeps its own bookkeeping, such as the parts of aborted uploads, beside it).
fn stored_files(s3: &S3Server) -> Vec<String> {
    common::files(&s3.dir.path().join(BUCKET))
}

/// ~14 MB of CSV: more than the 8 MiB upload buffer, so the output is a multipart upload of two parts.
const BIG: &str = "SELECT v, v * 2 AS w FROM (SELECT unnest(range(0, 1000000)) AS v)";

#[test]
fn a_failed_upload_leaves_nothing_under_the_final_key() {
    let s3 = server();
    let before = stored_files(&s3);
    let key = "out/big.csv";
    let output = format!("s3://{BUCKET}/{key}");
    let big = ["-q", "--io-retries", "1", "-o", output.as_str(), "sql", BIG];
    let small = ["-q", "--io-retries", "1", "-o", output.as_str(), "sql", "SELECT 1 AS x"];
    let is = |method: &'static str, query: &'static str| move |r: &Request| r.method == method && r.is_for(BUCKET, "out/big.csv") && r.target.contains(query);
    let always = |pred: Box<dyn Fn(&Request) -> bool + Send + Sync>| move |r: &Request| if pred(r) { Fault::Status(500) } else { Fault::Forward };
    let bound = Duration::from_secs(60);
    for (name, multipart, pred) in [
        ("the second part", true, Box::new(is("PUT", "partNumber=2")) as Box<dyn Fn(&Request) -> bool + Send + Sync>),
        ("the completion", true, Box::new(is("POST", "uploadId="))),
        ("a single PUT", false, Box::new(is("PUT", ""))),
    ] {
        let args = if multipart { &big } else { &small };
        let proxy = assert_fails(&s3, always(pred), args, 5, "output error: s3://catalogues/out/big.csv", 2, bound);
        if multipart {
            let aborted = proxy.count(Fault::Forward, |r| r.method == "DELETE" && r.target.contains("uploadId="));
            assert_eq!(aborted, 1, "{name}: the multipart upload was aborted: {:?}", proxy.log());
        }
        assert!(!s3.object_path(key).exists(), "{name}: nothing under the final key");
        assert_eq!(stored_files(&s3), before, "{name}: no other object either");
    }
    // Transient failures of a part and of the completion are retried, and the object is complete.
    let proxy = FaultProxy::start(&s3.endpoint, {
        let (part, completion) = (first(1, Fault::Status(503), is("PUT", "partNumber=1")), first(1, Fault::Reset, is("POST", "uploadId=")));
        move |r: &Request| match part(r) {
            Fault::Forward => completion(r),
            fault => fault,
        }
    });
    let out = s3.starflow_via(&proxy.endpoint).args(big).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!((proxy.count(Fault::Status(503), |_| true), proxy.count(Fault::Reset, |_| true)), (1, 1));
    let text = std::fs::read_to_string(s3.object_path(key)).unwrap();
    let mut rows: Vec<(i64, i64)> = text.lines().skip(1).map(|l| {
        let (v, w) = l.split_once(',').unwrap();
        (v.parse().unwrap(), w.parse().unwrap())
    }).collect();
    rows.sort();
    assert!(rows.iter().enumerate().all(|(i, &(v, w))| v == i as i64 && w == 2 * v) && rows.len() == 1_000_000, "every row once");
}

#[test]
fn a_catalogue_whose_upload_fails_leaves_none_of_its_files() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // 20 stars of the bundled catalogue, as a DR19 file in the bucket.
    let slice = dir.path().join("slice.parquet");
    write_bundled_stars(&slice, 20, 20);
    s3.put_file("dr19/slice.parquet", &slice);
    let before = stored_files(&s3);
    let args = ["-q", "--io-retries", "1", "catalog", "s3://catalogues/dr19/slice.parquet", "s3://catalogues/vac"];
    // The age posterior file (the second moved from the staging area into place, by a copy: a PUT to its key) cannot
    // be written: the summary, already in place, is removed again, and so is the staging area.
    let rule = |r: &Request| if r.method == "PUT" && r.is_for(BUCKET, "vac/StarFlow_age_posterior.parquet") { Fault::Status(500) } else { Fault::Forward };
    let proxy = assert_fails(&s3, rule, &args, 5, "StarFlow_age_posterior.parquet", 2, Duration::from_secs(60));
    for file in CATALOGUE_FILES {
        assert!(!s3.object_path(&format!("vac/{file}")).exists(), "{file} is absent");
    }
    assert_eq!(stored_files(&s3), before);
    // Installed under a lock object, created only if absent (If-None-Match), and removed again.
    assert_eq!(proxy.count(Fault::Forward, |r| r.method == "PUT" && r.is_for(BUCKET, "vac/.starflow.lock")), 1);
    // object_store deletes with (bulk) DeleteObjects requests: the summary, the lock, the staging area.
    assert_eq!(proxy.count(Fault::Forward, |r| r.method == "POST" && r.target == format!("/{BUCKET}?delete")), 3);
    // Without the fault, the same run writes all three.
    let out = s3.starflow().args(&args[..1]).args(&args[3..]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let previous: Vec<Vec<u8>> = CATALOGUE_FILES.iter().map(|f| std::fs::read(s3.object_path(&format!("vac/{f}"))).unwrap()).collect();
    let stored = stored_files(&s3);
    // A re-run that fails the same way (exit 5) leaves the previous three as they were: the summary, already
    // replaced, is put back from the copy kept in the staging area.
    let proxy = assert_fails(&s3, rule, &args, 5, "StarFlow_age_posterior.parquet", 2, Duration::from_secs(60));
    for (file, bytes) in CATALOGUE_FILES.iter().zip(&previous) {
        assert!(std::fs::read(s3.object_path(&format!("vac/{file}"))).unwrap() == *bytes, "{file} is the previous one");
    }
    assert_eq!(stored_files(&s3), stored, "no staging objects, no lock left");
    assert_eq!(proxy.count(Fault::Forward, |r| r.method == "PUT" && r.is_for(BUCKET, "vac/StarFlow_summary.parquet")), 2, "replaced, then put back");
}

const CATALOGUE_FILES: [&str; 3] = ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"];

#[test]
fn stopping_the_server_mid_query_fails_cleanly_and_leaves_no_output() {
    let mut s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // Many small row groups, read one after the other as the query goes.
    let stars = dir.path().join("stars.parquet");
    write_bundled_stars(&stars, 3000, 100);
    s3.put_file("in/stars.parquet", &stars);
    // Hold the fifth read of the data: by then the query has planned and started; stop the server meanwhile.
    let proxy = FaultProxy::start(&s3.endpoint, first(1, Fault::Hold, {
        let reads = AtomicUsize::new(0);
        move |r| r.method == "GET" && r.is_for(BUCKET, "in/stars.parquet") && reads.fetch_add(1, Ordering::SeqCst) == 4
    }));
    let target = dir.path().join("ages.csv");
    let mut child = s3
        .starflow_std_via(&proxy.endpoint)
        .args(["-q", "--io-retries", "2", "--io-timeout", "2", "--connect-timeout", "1", "--batch-size", "100"])
        .args(["-o", target.to_str().unwrap(), "sql"])
        .arg(format!("SELECT sdss4_apogee_id, starflow_age(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_h - fe_h, e_c_h, n_h - fe_h, e_n_h)['age'] AS age FROM 's3://{BUCKET}/in/stars.parquet'"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    proxy.wait_for_hold(Duration::from_secs(60));
    let started = Instant::now();
    s3.stop();
    proxy.release();
    let out = wait_with_deadline(&mut child, Duration::from_secs(60));
    assert_no_secret(&out);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("cannot reach the storage endpoint"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "failed {:?} after the server stopped", started.elapsed());
    assert!(!target.exists(), "no partial output");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the input: no staging file left");
}

/// The first `n` bundled stars as a Parquet file with row groups of `row_group_rows`.
fn write_bundled_stars(path: &std::path::Path, n: usize, row_group_rows: usize) {
    use datafusion::arrow::compute::concat_batches;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    let batches = common::read_parquet(&bundled_catalogue());
    let stars = concat_batches(&batches[0].schema(), &batches).unwrap().slice(0, n);
    let properties = WriterProperties::builder().set_max_row_group_row_count(Some(row_group_rows)).build();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), stars.schema(), Some(properties)).unwrap();
    writer.write(&stars).unwrap();
    writer.close().unwrap();
}

/// The child's output, or a panic (after killing it) when it runs past `limit`.
fn wait_with_deadline(child: &mut std::process::Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Output { status: child.wait().unwrap(), stdout: Vec::new(), stderr: Vec::new() };
    use std::io::Read;
    child.stdout.take().unwrap().read_to_end(&mut out.stdout).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut out.stderr).unwrap();
    out
}

#[test]
fn the_secret_key_is_in_no_explain_output_or_error() {
    let s3 = server();
    let url = format!("s3://{BUCKET}/{DATA}");
    for sql in [
        format!("EXPLAIN SELECT count(*) FROM '{url}'"),
        format!("EXPLAIN VERBOSE SELECT teff FROM '{url}' WHERE logg < 2"),
        format!("EXPLAIN ANALYZE SELECT max(teff) FROM '{url}'"),
        format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{url}'; EXPLAIN SELECT * FROM t; SHOW ALL"),
    ] {
        let out = s3.starflow().args(["--format-out", "csv", "sql", &sql]).output().unwrap();
        assert!(out.status.success(), "{sql}: {}", stderr(&out));
        assert!(stdout_of(&out).contains(DATA), "{sql}: the plan names the file: {}", stdout_of(&out));
        assert_no_secret(&out);
    }
    // Errors: a wrong secret (the one sent) is not echoed either.
    let wrong = "a-wrong-secret-that-must-not-be-echoed";
    let out = s3.starflow().env("AWS_SECRET_ACCESS_KEY", wrong).args(["--io-retries", "0", "sql", &format!("SELECT * FROM '{url}'")]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(wrong), "{}", stderr(&out));
}
