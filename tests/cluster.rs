//! The cluster (feature `cluster`, docs/DISTRIBUTED.md): the same SQL and the StarFlow catalogue on Apache DataFusion
//! Ballista, bitwise equal to the single process.
//!
//! - in one process (quick): starflow's own scheduler and two executors as tasks of the test, a client engine;
//! - real processes on 127.0.0.1: `starflow scheduler`, two `starflow executor`s and s3s-fs, the client the binary
//!   (the catalogue of a multi-file dataset in S3, a model that differs, an executor killed mid-query, no scheduler);
//! - the command lines of deploy/ are ones the CLI takes.
#![cfg(feature = "cluster")]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use futures::TryStreamExt;
use starflow::engine::{Engine, EngineOptions};

use common::{BUCKET, S3Server, bundled_catalogue, outcome, read_parquet, repo_root, write_bundled_rows};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn options(models: &Path, cluster: Option<String>) -> EngineOptions {
    EngineOptions { threads: 2, models_dir: Some(models.to_path_buf()), cluster, ..EngineOptions::default() }
}

/// Each row as text, floats by their bits: equal fingerprints are bitwise-equal results.
fn fingerprint(batches: &[RecordBatch]) -> Vec<String> {
    let Some(first) = batches.first() else { return Vec::new() };
    let all = concat_batches(&first.schema(), batches).unwrap();
    (0..all.num_rows())
        .map(|row| {
            let cells: Vec<String> = all
                .columns()
                .iter()
                .map(|column| match column.data_type() {
                    _ if column.is_null(row) => "null".to_string(),
                    DataType::Float64 => format!("{:016x}", column.as_primitive::<Float64Type>().value(row).to_bits()),
                    DataType::Float32 => format!("{:08x}", column.as_primitive::<Float32Type>().value(row).to_bits()),
                    DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
                    DataType::Utf8 => column.as_string::<i32>().value(row).to_string(),
                    DataType::Utf8View => column.as_string_view().value(row).to_string(),
                    other => panic!("no fingerprint for {other}"),
                })
                .collect();
            cells.join(",")
        })
        .collect()
}

async fn run_sql(engine: &Engine, sql: &str) -> datafusion::common::Result<Vec<RecordBatch>> {
    let mut last = Vec::new();
    for statement in engine.parse(sql)? {
        if let Some(query) = engine.execute(statement).await? {
            last = query.stream.try_collect().await?;
        }
    }
    Ok(last)
}

/// Ages and masses of the bundled stars whose id ends in 3 (about a tenth), sorted by id.
fn flow_query(input: &Path) -> String {
    let args = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_h - fe_h, e_c_h, n_h - fe_h, e_n_h";
    format!(
        // Settings other than the defaults: they must reach the executors (they change every star's numbers).
        "SET starflow.label_release = 'dr17'; SET starflow.seed = 7;
         SELECT sdss4_apogee_id, a['age'], a['e_p_age'], a['age_median'], a['bitmask'], m['mass'], m['mass_p16'], m['training_density']
         FROM (SELECT sdss4_apogee_id, starflow_age({args}) AS a, starflow_mass({args}) AS m
               FROM '{}' WHERE sdss4_apogee_id LIKE '%3')
         ORDER BY sdss4_apogee_id",
        input.display()
    )
}

/// Run `side` (a scheduler or an executor, which run until the process ends) on a thread with a runtime of its own.
fn in_background<F: Future<Output = Result<(), starflow::error::CliError>> + 'static>(side: impl FnOnce() -> F + Send + 'static) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        if let Err(e) = runtime.block_on(side()) {
            panic!("{e}");
        }
    });
}

/// starflow's scheduler and two executors in this process (threads of their own); the scheduler's `df://` URL.
fn in_process_cluster(models: &Path, executor_models: &Path) -> String {
    let port = free_port();
    let scheduler_options = options(models, None);
    in_background(move || async move { starflow::cluster::scheduler(&format!("127.0.0.1:{port}"), &scheduler_options).await });
    wait_for_port(port);
    for _ in 0..2 {
        let executor_options = options(executor_models, None);
        let bind = format!("127.0.0.1:{}", free_port());
        in_background(move || async move {
            starflow::cluster::executor(&format!("127.0.0.1:{port}"), &bind, &executor_options).await
        });
    }
    format!("df://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_cluster_gives_the_single_process_numbers_bitwise() {
    let models = repo_root().join("models");
    let url = in_process_cluster(&models, &models);
    let sql = flow_query(&bundled_catalogue());

    let local = Engine::new(&options(&models, None)).unwrap();
    let expected = fingerprint(&run_sql(&local, &sql).await.unwrap());
    assert!(expected.len() > 200, "{} stars", expected.len());

    let client = Engine::new(&options(&models, Some(url))).unwrap();
    // The StarFlow functions are there after Ballista's upgrade of the session, and so are DataFusion's built-ins.
    let functions = client.context().state().scalar_functions().clone();
    for name in ["starflow_age", "starflow_estimate", "starflow_flag_names", "abs", "sqrt"] {
        assert!(functions.contains_key(name), "{name} missing on the client");
    }
    // A plan the scheduler decodes and plans, and executors run: with the functions missing on either, it fails.
    let on_cluster = fingerprint(&run_sql(&client, &sql).await.unwrap());
    assert_eq!(on_cluster, expected, "the cluster's numbers are the single process's, bit for bit");

    // Plain SQL and an aggregate (a shuffle) too.
    let count = format!("SELECT count(*), min(teff), max(logg) FROM '{}' WHERE NOT flag_bad", bundled_catalogue().display());
    let (a, b) = (run_sql(&client, &count).await.unwrap(), run_sql(&local, &count).await.unwrap());
    assert_eq!(fingerprint(&a), fingerprint(&b));
}

/// A models directory whose `age` is another model (the closed-form test model) and whose `mass` is the bundled one.
fn models_with_other_age(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    for (name, from) in [("age", repo_root().join("tests/data/gaussian")), ("mass", repo_root().join("models/mass"))] {
        std::fs::create_dir_all(models.join(name)).unwrap();
        for file in ["manifest.json", "model.onnx"] {
            std::fs::copy(from.join(file), models.join(name).join(file)).unwrap();
        }
    }
    models
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_executor_with_other_model_bytes_refuses_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let models = repo_root().join("models");
    let url = in_process_cluster(&models, &models_with_other_age(dir.path()));
    let client = Engine::new(&options(&models, Some(url))).unwrap();
    let err = run_sql(&client, &flow_query(&bundled_catalogue())).await.unwrap_err().to_string();
    assert!(err.contains("model 'age' here"), "{err}");
    assert!(err.contains("is not the one the query was planned with"), "{err}");
    let planned = client.models().get("age").unwrap().onnx_sha256.clone();
    assert!(err.contains(&planned), "the client's sha256 is named: {err}");
    // Plain SQL needs no model and still runs.
    let rows = run_sql(&client, "SELECT 1 + 1").await.unwrap();
    assert_eq!(rows[0].num_rows(), 1);
}

/// A process of the test cluster; killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `starflow scheduler` and `n` `starflow executor`s on 127.0.0.1 reading `s3`; the scheduler's URL.
fn cluster_processes(s3: &S3Server, n: usize) -> (String, Process, Vec<Process>) {
    let port = free_port();
    let spawn = |args: &[String]| {
        let mut cmd = s3.starflow_std_via(&s3.endpoint);
        cmd.args(["--threads", "1"]).args(args).stdout(Stdio::null()).stderr(Stdio::null());
        Process(cmd.spawn().unwrap())
    };
    let scheduler = spawn(&["scheduler".into(), "--bind".into(), format!("127.0.0.1:{port}")]);
    wait_for_port(port);
    let executors = (0..n)
        .map(|_| {
            let bind = format!("127.0.0.1:{}", free_port());
            spawn(&["executor".into(), "--scheduler".into(), format!("127.0.0.1:{port}"), "--bind".into(), bind])
        })
        .collect();
    (format!("df://127.0.0.1:{port}"), scheduler, executors)
}

/// The bundled stars as `files` Parquet files of `rows` rows each under `dr19/` in the bucket.
fn put_dataset(s3: &S3Server, files: usize, rows: usize) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..files {
        let path = dir.path().join(format!("part-{i}.parquet"));
        write_bundled_rows(&path, i * rows, rows, &[]);
        s3.put_file(&format!("dr19/part-{i}.parquet"), &path);
    }
}

const CATALOGUE_FILES: [&str; 3] = ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"];

#[test]
fn catalogue_and_sql_on_a_multi_process_cluster_equal_the_single_process() {
    let s3 = S3Server::start();
    put_dataset(&s3, 3, 150);
    let (url, _scheduler, _executors) = cluster_processes(&s3, 2);
    let out = tempfile::tempdir().unwrap();
    let input = format!("s3://{BUCKET}/dr19/");

    // --keep: the cluster redefines the input view over each file with the kept columns.
    let single = s3.starflow().args(["-q", "catalog", "--keep", "teff,flag_bad", &input]).arg(out.path().join("single")).output().unwrap();
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    let cluster = s3
        .starflow()
        .args(["-q", "--cluster", &url, "catalog", "--keep", "teff,flag_bad", &input])
        .arg(out.path().join("cluster"))
        .output()
        .unwrap();
    assert!(cluster.status.success(), "{}", String::from_utf8_lossy(&cluster.stderr));
    for file in CATALOGUE_FILES {
        let (a, b) = (read_parquet(&out.path().join("single").join(file)), read_parquet(&out.path().join("cluster").join(file)));
        let (a, b) = (concat_batches(&a[0].schema(), &a).unwrap(), concat_batches(&b[0].schema(), &b).unwrap());
        assert_eq!(a.num_rows(), 450, "{file}");
        if file == CATALOGUE_FILES[0] {
            assert!(a.schema().field_with_name("teff").is_ok() && a.schema().field_with_name("flag_bad").is_ok());
        }
        // Same rows in the same order (row-matched to the input), same numbers bit for bit, same schema and metadata.
        assert_eq!(a.schema(), b.schema(), "{file}");
        for (x, y) in a.columns().iter().zip(b.columns()) {
            assert_eq!(x.to_data(), y.to_data(), "{file}");
        }
    }

    // Ad-hoc SQL over the same S3 dataset: the table printed is the single process's.
    let sql = "SELECT sdss4_apogee_id, starflow_flags('age', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_h - fe_h, e_c_h, \
               n_h - fe_h, e_n_h) AS flags FROM ds ORDER BY sdss4_apogee_id LIMIT 40";
    let table = format!("ds={input}");
    let single = s3.starflow().args(["--table", &table, "--format-out", "csv", "sql", sql]).output().unwrap();
    let cluster = s3.starflow().args(["--cluster", &url, "--table", &table, "--format-out", "csv", "sql", sql]).output().unwrap();
    let (code, stdout, stderr) = outcome(&cluster);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, outcome(&single).1);
    assert_eq!(stdout.lines().count(), 41);
}

#[test]
fn an_executor_killed_mid_query_leaves_a_complete_catalogue_or_none() {
    let s3 = S3Server::start();
    put_dataset(&s3, 4, 400);
    let (url, _scheduler, mut executors) = cluster_processes(&s3, 2);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("catalogue");
    let mut client = s3.starflow_std_via(&s3.endpoint);
    client.args(["-q", "--cluster", &url, "catalog", &format!("s3://{BUCKET}/dr19/")]).arg(&target);
    let client = client.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let victim = executors.remove(0);
    drop(victim);
    let output = client.wait_with_output().unwrap();
    let (code, _, stderr) = outcome(&output);
    match code {
        // Ballista ran the lost tasks on the other executor: the catalogue is whole, and equal to the single process's.
        Some(0) => {
            for file in CATALOGUE_FILES {
                let rows: usize = read_parquet(&target.join(file)).iter().map(|b| b.num_rows()).sum();
                assert_eq!(rows, 1600, "{file}");
            }
        }
        // Or the query failed, in one line, and nothing of the catalogue exists.
        _ => {
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
            assert!(!target.join(CATALOGUE_FILES[0]).exists(), "no partial output");
            assert!(common::tree(out.path()).iter().all(|p| !p.ends_with(".parquet")), "{:?}", common::tree(out.path()));
        }
    }
}

#[test]
fn an_unreachable_scheduler_is_a_data_error_in_one_line() {
    let port = free_port();
    let output = common::starflow().args(["--cluster", &format!("df://127.0.0.1:{port}"), "sql", "SELECT 1"]).output().unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(4), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("cannot reach the cluster's scheduler at df://127.0.0.1:{port}")), "{stderr}");

    let output = common::starflow().args(["--cluster", "df://nowhere", "sql", "SELECT 1"]).output().unwrap();
    assert_eq!(outcome(&output).0, Some(2), "a URL without a port is a usage error");
}

/// The starflow command lines of deploy/ (the compose file's and the Kubernetes manifest's scheduler and executor): the
/// CLI takes each of them (with `--help` appended, clap checks every argument and stops before serving).
#[test]
fn the_deploy_files_command_lines_are_ones_the_cli_takes() {
    let mut lines = Vec::new();
    for file in ["deploy/docker-compose.yml", "deploy/kubernetes.yaml"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        for line in text.lines().map(str::trim) {
            if let Some(list) = line.strip_prefix("command: [\"--").or_else(|| line.strip_prefix("args: [\"--")) {
                // ["--quiet", "scheduler", ...]: the image's entrypoint is the binary
                let args: Vec<String> = format!("--{list}").trim_end_matches(']').split(", ").map(|a| a.trim_matches('"').to_string()).collect();
                lines.push((file, args));
            } else if let Some((_, rest)) = line.split_once("exec /opt/starflow/starflow ") {
                // a shell line: the container's address stands in for a variable
                let rest = rest.trim_end_matches(['"', ']']).replace("$$(hostname -i)", "10.0.0.7").replace("$(POD_IP)", "10.0.0.7");
                let args = rest.split_whitespace().map(String::from).collect();
                lines.push((file, args));
            }
        }
    }
    let commands: Vec<String> = lines.iter().map(|(file, args)| format!("{file}: {}", args.join(" "))).collect();
    assert_eq!(lines.len(), 4, "a scheduler and an executor in each file: {commands:#?}");
    for (file, args) in &lines {
        let out = common::starflow().args(args).arg("--help").output().unwrap();
        let (code, stdout, stderr) = outcome(&out);
        assert_eq!(code, Some(0), "{file}: starflow {}: {stderr}", args.join(" "));
        assert!(stdout.contains("Usage: starflow scheduler") || stdout.contains("Usage: starflow executor"), "{stdout}");
    }
}
