//! Issue 13, classes 6, 7 (decoders), 8 (presigned URLs) and 10 (damaged files): multi-file inputs whose files
//! disagree, hidden files, the catalogue's --input-format, damaged Parquet files (locally and over s3s-fs), empty
//! files, and presigned https URLs read with their query string.

mod common;

use std::time::Duration;

use common::{BUCKET, S3Server, bundled_catalogue, outcome, starflow, write_bundled_rows, write_parquet};

/// The run failed as a data error (exit 4) in one line naming `file`, without a panic's "internal error".
fn assert_data_error(out: &std::process::Output, file: &str, what: &str) {
    let (code, _, err) = outcome(out);
    assert_eq!(code, Some(4), "{what}: {err}");
    assert!(err.contains(file), "{what}: the message names {file}: {err}");
    assert!(!err.contains("internal error") && !err.contains("panicked"), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
}

#[test]
fn a_file_lacking_a_column_of_its_table_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("dr19");
    std::fs::create_dir(&table).unwrap();
    write_bundled_rows(&table.join("part-0.parquet"), 0, 100, &[]);
    write_bundled_rows(&table.join("part-1.parquet"), 100, 100, &["n_h"]);
    let url = format!("{}/", table.display());
    let out = starflow().args(["sql", &format!("SELECT count(*), count(n_h) FROM '{url}'")]).output().unwrap();
    assert_data_error(&out, "part-1.parquet lacks column 'n_h'", "URL table");
    let out = starflow().args(["--table", &format!("t={url}"), "sql", "SELECT count(*) FROM t"]).output().unwrap();
    assert_data_error(&out, "part-1.parquet lacks column 'n_h'", "--table");
    let out = starflow().args(["catalog", &url, dir.path().join("out").to_str().unwrap()]).output().unwrap();
    assert_data_error(&out, "part-1.parquet lacks column 'n_h'", "catalog");
    assert!(!dir.path().join("out/StarFlow_summary.parquet").exists());
    // Alone, the same file is a data error naming the column its release needs.
    let out = starflow().args(["catalog", table.join("part-1.parquet").to_str().unwrap(), dir.path().join("out").to_str().unwrap()]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("a DR19 astraAllStarASPCAP file lacks n_h;"), "{err}");

    // A file with a column the others lack would give nulls for theirs; CSV files are read by position.
    std::fs::remove_file(table.join("part-1.parquet")).unwrap();
    write_parquet(&table.join("part-1.parquet"), 10);
    let out = starflow().args(["sql", &format!("SELECT count(*) FROM '{url}'")]).output().unwrap();
    assert_data_error(&out, "every file of a table must have the same columns", "other columns");
    let csv = dir.path().join("csv");
    std::fs::create_dir(&csv).unwrap();
    std::fs::write(csv.join("a.csv"), "id,x\n1,2.5\n").unwrap();
    std::fs::write(csv.join("b.csv"), "x,id\n3.5,2\n").unwrap();
    let out = starflow().args(["sql", &format!("SELECT sum(x) FROM '{}/'", csv.display())]).output().unwrap();
    assert_data_error(&out, "b.csv has the columns of", "CSV in another order");
}

#[test]
fn hidden_and_bookkeeping_files_are_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("dr19");
    std::fs::create_dir_all(table.join("_temporary/0")).unwrap();
    write_bundled_rows(&table.join("part-0.parquet"), 0, 30, &[]);
    write_bundled_rows(&table.join("part-1.parquet"), 30, 20, &[]);
    std::fs::write(table.join("_SUCCESS"), "").unwrap();
    std::fs::write(table.join(".part-0.parquet.crc"), "crc").unwrap();
    std::fs::write(table.join(".DS_Store"), "x").unwrap();
    std::fs::write(table.join("_temporary/0/part-9.parquet"), "half written").unwrap();
    let url = format!("{}/", table.display());
    let out = starflow().args(["--format-out", "csv", "sql", &format!("SELECT count(*) AS n FROM '{url}'")]).output().unwrap();
    assert_eq!(outcome(&out), (Some(0), "n\n50\n".to_string(), String::new()));
    let out = starflow().args(["--table", &format!("t={url}"), "--format-out", "csv", "sql", "SELECT count(*) AS n FROM t"]).output().unwrap();
    assert_eq!(outcome(&out).1, "n\n50\n", "{}", outcome(&out).2);
    let out_dir = dir.path().join("out");
    let out = starflow().args(["-q", "catalog", &url, out_dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let rows: usize = common::read_parquet(&out_dir.join("StarFlow_summary.parquet")).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 50);
}

#[test]
fn the_catalogue_reads_its_input_with_the_input_format() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("stars.dat");
    let out = starflow()
        .args(["-q", "-o", input.to_str().unwrap(), "--format-out", "csv", "sql"])
        .arg(format!("SELECT * FROM '{}' LIMIT 25", bundled_catalogue().display()))
        .output()
        .unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let out_dir = dir.path().join("out");
    let out = starflow().args(["-q", "catalog", input.to_str().unwrap(), out_dir.to_str().unwrap()]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(4), "no format from '.dat': {err}");
    assert!(err.contains("--input-format"), "{err}");
    let out = starflow().args(["-q", "--input-format", "csv", "catalog", input.to_str().unwrap(), out_dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let rows: usize = common::read_parquet(&out_dir.join("StarFlow_age_posterior.parquet")).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 25);
}

/// `good` with its footer length (the 4 bytes before the closing magic) set to `length`.
fn with_footer_length(good: &[u8], length: u32) -> Vec<u8> {
    let mut bytes = good.to_vec();
    let at = bytes.len() - 8;
    bytes[at..at + 4].copy_from_slice(&length.to_le_bytes());
    bytes
}

#[test]
fn damaged_parquet_footers_and_empty_files_are_data_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good_path = dir.path().join("good.parquet");
    write_parquet(&good_path, 1000);
    let good = std::fs::read(&good_path).unwrap();
    let s3 = S3Server::start();
    let mut damaged: Vec<(String, Vec<u8>)> = [0x7fff_ffffu32, 0xffff_ffff, 0x8000_0000, 0, 1, good.len() as u32 - 8, good.len() as u32 - 7]
        .iter()
        .map(|&n| (format!("len-{n:x}.parquet"), with_footer_length(&good, n)))
        .collect();
    let mut garbage = good.clone();
    let footer = garbage.len() - 8 - 40;
    garbage[footer..footer + 32].fill(0xff);
    damaged.push(("garbage-footer.parquet".into(), garbage));
    damaged.push(("no-magic.parquet".into(), good[..good.len() - 4].to_vec()));
    damaged.push(("empty.parquet".into(), Vec::new()));
    for (name, bytes) in &damaged {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = starflow().args(["sql", &format!("SELECT count(*), sum(x) FROM '{}'", path.display())]).output().unwrap();
        assert_data_error(&out, name, &format!("local {name}"));
        s3.put_file(&format!("bad/{name}"), &path);
        let out = s3.starflow().args(["sql", &format!("SELECT count(*), sum(x) FROM 's3://{BUCKET}/bad/{name}'")]).output().unwrap();
        assert_data_error(&out, name, &format!("S3 {name}"));
        // Beside a good file in a directory: still named, never skipped.
        let table = dir.path().join(format!("table-{name}"));
        std::fs::create_dir(&table).unwrap();
        std::fs::copy(&good_path, table.join("a.parquet")).unwrap();
        std::fs::write(table.join(name), bytes).unwrap();
        let out = starflow().args(["--table", &format!("t={}/", table.display()), "sql", "SELECT count(*) FROM t"]).output().unwrap();
        assert_data_error(&out, name, &format!("directory with {name}"));
    }
}

#[test]
fn a_damaged_data_page_is_a_data_error_naming_the_file() {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let good = std::fs::read(bundled_catalogue()).unwrap();
    // The teff column's first data page (compressed): bytes past its header overwritten.
    let reader = SerializedFileReader::new(std::fs::File::open(bundled_catalogue()).unwrap()).unwrap();
    let row_group = reader.metadata().row_group(0);
    let teff = (0..row_group.num_columns()).find(|&i| row_group.column(i).column_descr().name() == "teff").unwrap();
    let page = row_group.column(teff).data_page_offset() as usize;
    let mut bytes = good.clone();
    bytes[page + 40..page + 104].fill(0xa5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paged.parquet");
    std::fs::write(&path, &bytes).unwrap();
    // The footer is intact: planning succeeds, and the scan fails on the page.
    let out = starflow().args(["sql", &format!("SELECT sum(teff) FROM '{}'", path.display())]).output().unwrap();
    assert_data_error(&out, &path.display().to_string(), "local");
    let out = starflow().args(["sql", &format!("SELECT count(*) FROM '{}'", path.display())]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "a count reads no page: {}", outcome(&out).2);
    // Beside a good file, and over S3.
    let table = dir.path().join("table");
    std::fs::create_dir(&table).unwrap();
    std::fs::copy(bundled_catalogue(), table.join("a.parquet")).unwrap();
    std::fs::copy(&path, table.join("b.parquet")).unwrap();
    let out = starflow().args(["sql", &format!("SELECT sum(teff) FROM '{}/'", table.display())]).output().unwrap();
    assert_data_error(&out, "one of 2 files", "directory");
    let s3 = S3Server::start();
    s3.put_file("paged.parquet", &path);
    let out = s3.starflow().args(["sql", &format!("SELECT sum(teff) FROM 's3://{BUCKET}/paged.parquet'")]).output().unwrap();
    assert_data_error(&out, &format!("s3://{BUCKET}/paged.parquet"), "S3");
}

#[test]
fn presigned_https_urls_keep_their_query_and_their_signature_stays_secret() {
    use object_store::signer::Signer;
    let s3 = S3Server::start();
    s3.put_file("in/cat.parquet", &bundled_catalogue());
    let signer = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id(common::ACCESS_KEY)
        .with_secret_access_key(common::SECRET_KEY)
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let path = object_store::path::Path::from("in/cat.parquet");
    // `Default` is GET.
    let url = rt.block_on(signer.signed_url(Default::default(), &path, Duration::from_secs(600))).unwrap().to_string();
    let signature = url.split("X-Amz-Signature=").nth(1).unwrap().to_string();

    // No credentials at all: the URL carries them.
    let out = starflow().args(["--format-out", "csv", "sql", &format!("SELECT count(*) AS n FROM '{url}'")]).output().unwrap();
    assert_eq!(outcome(&out), (Some(0), "n\n6603\n".to_string(), String::new()));
    let out = starflow().args(["--table", &format!("stars={url}"), "--format-out", "csv", "sql", "SELECT count(*) AS n FROM stars"]).output().unwrap();
    assert_eq!(outcome(&out).1, "n\n6603\n", "{}", outcome(&out).2);

    // A tampered signature is refused; no message shows the query string.
    let tampered = url.replace(&signature, &"0".repeat(signature.len()));
    let out = starflow().args(["sql", &format!("SELECT count(*) FROM '{tampered}'")]).output().unwrap();
    let (code, stdout, err) = outcome(&out);
    assert_eq!(code, Some(4), "{err}");
    assert!(!err.contains("X-Amz-Credential") && !err.contains(&"0".repeat(signature.len())), "{err}");
    let odd = url.replace("cat.parquet", "cat.vot");
    let out = starflow().args(["--table", &format!("t={odd}"), "sql", "SELECT 1"]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("unsupported input format '.vot'") && !err.contains(&signature), "{err}");
    assert!(!stdout.contains(&signature));
}
