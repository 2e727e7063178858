//! Output files are complete or absent, and memory stays bounded: a failed or interrupted write leaves nothing under
//! the final name, and a catalogue larger than --memory-limit is processed (streamed, or sorted with spilling).

mod common;

use std::sync::Arc;

use common::{S3Server, BUCKET, read_parquet, starflow};
use datafusion::arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;

/// Files in `dir` (staging files of an aborted upload would show up here too).
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A query that fails after it has produced rows: the cast fails only at the last row.
const FAILS_LATE: &str = "SELECT CAST(CASE WHEN v = 200000 THEN 'x' ELSE CAST(v AS VARCHAR) END AS BIGINT) AS n \
                          FROM (SELECT unnest(range(1, 200001)) AS v)";

#[test]
fn a_failed_query_leaves_no_file_locally_or_in_s3() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.csv");
    std::fs::write(dir.path().join("keep.txt"), "unrelated").unwrap();
    let out = starflow().args(["--batch-size", "1000", "-o", target.to_str().unwrap(), "sql", FAILS_LATE]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files_in(dir.path()), vec!["keep.txt".to_string()], "no out.csv and no staging file");

    let s3 = S3Server::start();
    let out = s3.starflow().args(["--batch-size", "1000", "-o", &format!("s3://{BUCKET}/out/fail.csv"), "sql", FAILS_LATE]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!s3.object_path("out/fail.csv").exists());
}

/// `rows` rows of (id, pseudo-random x): 16 incompressible bytes per row.
fn write_random_parquet(path: &std::path::Path, rows: usize) {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("x", DataType::Float64, false)]));
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), None).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for start in (0..rows).step_by(65_536) {
        let end = (start + 65_536).min(rows);
        let ids: Vec<i64> = (start as i64..end as i64).collect();
        let xs: Vec<f64> = ids.iter().map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        }).collect();
        writer.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(Float64Array::from(xs))]).unwrap()).unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn a_catalogue_larger_than_the_memory_limit_streams_and_sorts_with_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.parquet");
    let rows = 5_000_000;
    write_random_parquet(&input, rows);
    let size = std::fs::metadata(&input).unwrap().len();
    assert!(size > 32 << 20, "input is {size} bytes, more than the 32 MiB limit");

    // Streaming: a projection of every row to Parquet.
    let streamed = dir.path().join("streamed.parquet");
    let out = starflow().args(["--memory-limit", "32M", "-o", streamed.to_str().unwrap(), "sql"])
        .arg(format!("SELECT id, x * 2 AS y FROM '{}'", input.display())).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let total: usize = read_parquet(&streamed).iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, rows);

    // A full sort cannot fit in 32 MiB: it must spill and still be right.
    let sorted = dir.path().join("sorted.parquet");
    let out = starflow().args(["--memory-limit", "32M", "-o", sorted.to_str().unwrap(), "sql"])
        .arg(format!("SELECT id, x FROM '{}' ORDER BY x DESC", input.display())).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let batches = read_parquet(&sorted);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows);
    let xs: Vec<f64> = batches.iter().flat_map(|b| b.column(1).as_primitive::<Float64Type>().values().to_vec()).collect();
    assert!(xs.windows(2).all(|w| w[0] >= w[1]), "sorted descending");
    let ids: std::collections::HashSet<i64> = batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids.len(), rows, "every row once");
}

#[test]
fn ctrl_c_during_a_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.parquet");
    write_random_parquet(&input, 3_000_000);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("all.csv");
    // Sorting 3M rows on two threads and writing ~100 MB of CSV takes seconds: long enough to interrupt mid-write.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("starflow"))
        .args(["-q", "--batch-size", "4096", "-o", target.to_str().unwrap(), "sql"])
        .arg(format!("SELECT id, x, x * 3 AS y, x * 7 AS z FROM '{}'", input.display()))
        .spawn()
        .unwrap();
    // Wait until the upload has begun (a staging file appears), then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while files_in(&out_dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the write never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130), "interrupted");
    assert_eq!(files_in(&out_dir), Vec::<String>::new(), "neither all.csv nor its staging file remains");
}
