//! FITS through the `starflow` command: URL tables, `--table`, `CREATE EXTERNAL TABLE ... STORED AS FITS`, S3
//! (s3s-fs) and HTTP, plain and gzipped, read bit for bit as the Parquet file the FITS copy was made from; the catalogue
//! of the FITS copy of the bundled stars (equal, bit for bit, to the catalogue of the Parquet file); the bytes ranged
//! reads fetch from S3; broken files (exit 4, one line naming the file); units that reach the outputs and astropy. The
//! FITS files are written by astropy (`tests/data/fits/make_fits.py`) once per run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use common::fault_proxy::{Fault, FaultProxy, Request};
use common::http_files::HttpFiles;
use common::{BUCKET, S3Server, bundled_catalogue, read_parquet, starflow};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

const VAC_FILES: [&str; 3] = ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"];

fn python() -> String {
    let env = Command::new(common::repo_root().join("scripts/python-env.sh")).output().unwrap();
    assert!(env.status.success(), "python-env.sh: {}", String::from_utf8_lossy(&env.stderr));
    String::from_utf8(env.stdout).unwrap().trim().to_string()
}

/// types.fits(.gz), hdus.fits, bundled.fits(.gz): see make_fits.py.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let made = Command::new(python())
            .arg(common::repo_root().join("tests/data/fits/make_fits.py"))
            .arg(dir.path())
            .arg("--bundled")
            .arg(bundled_catalogue())
            .output()
            .unwrap();
        assert!(made.status.success(), "make_fits.py: {}", String::from_utf8_lossy(&made.stderr));
        dir
    })
    .path()
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn read_all(path: &Path) -> RecordBatch {
    let batches = read_parquet(path);
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// `SELECT * FROM table` as starflow reads it after `setup` (SQL), in a fixed row order (by every column; the bundled
/// stars have no key), written with `-o` and read back; strings as Utf8 (Parquet inputs read as Utf8View).
fn table_via(cmd: &mut assert_cmd::Command, setup: &str, table: &str) -> RecordBatch {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("table.parquet");
    let order: Vec<String> = (1..=read_all(&bundled_catalogue()).num_columns()).map(|i| i.to_string()).collect();
    let sql = format!("{setup} SELECT * FROM {table} ORDER BY {}", order.join(", "));
    let run = cmd.args(["-q", "-o", &path.display().to_string(), "sql", &sql]).output().unwrap();
    assert!(run.status.success(), "{table}: {}", String::from_utf8_lossy(&run.stderr));
    let batch = read_all(&path);
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| if *c.data_type() == DataType::Utf8View { cast(c, &DataType::Utf8).unwrap() } else { Arc::clone(c) })
        .collect();
    let fields: Vec<Field> =
        batch.schema().fields().iter().zip(&columns).map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn table(url: &str) -> RecordBatch {
    table_via(&mut starflow(), "", &format!("'{url}'"))
}

/// Every value, bit for bit (ArrayData equality compares the values' bytes: NaN payloads and -0.0 included).
fn assert_same_table(a: &RecordBatch, b: &RecordBatch, what: &str) {
    assert_eq!(a.num_rows(), b.num_rows(), "{what}: rows");
    assert_eq!(a.num_columns(), b.num_columns(), "{what}: columns");
    for (i, field) in a.schema().fields().iter().enumerate() {
        assert_eq!(field.name(), b.schema().field(i).name(), "{what}: column {i}");
        assert_eq!(a.column(i).to_data(), b.column(i).to_data(), "{what}: column {}", field.name());
    }
}

/// The bundled stars as read from their Parquet file.
fn bundled() -> &'static RecordBatch {
    static TABLE: OnceLock<RecordBatch> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table = table(&bundled_catalogue().display().to_string());
        assert_eq!(table.num_rows(), 6603);
        table
    })
}

#[test]
fn fits_tables_read_like_the_parquet_they_were_made_from() {
    for file in ["bundled.fits", "bundled.fits.gz"] {
        assert_same_table(bundled(), &table(&fixture(file)), &format!("{file} as a URL table"));
        // --table, with the threads of a real run (files under 10 MiB stay one partition: row ranges are split in the
        // S3 test below and in the reader's own tests).
        for location in [fixture(file), fixture(&file.replace("bundled", "bundled*"))] {
            let mut cmd = starflow();
            cmd.args(["--threads", "4", "--table", &format!("stars={location}")]);
            assert_same_table(bundled(), &table_via(&mut cmd, "", "stars"), &format!("--table stars={location}"));
        }
    }
    let create = format!("CREATE EXTERNAL TABLE s STORED AS FITS LOCATION '{}' OPTIONS ('hdu' '1');", fixture("bundled.fits.gz"));
    assert_same_table(bundled(), &table_via(&mut starflow(), &create, "s"), "CREATE EXTERNAL TABLE");
}

#[test]
fn fits_in_s3_plain_gzipped_and_split_into_ranges() {
    let s3 = S3Server::start();
    for key in ["dr19/bundled.fits", "dr19/bundled.fits.gz"] {
        s3.put_file(key, Path::new(&fixture(key.trim_start_matches("dr19/"))));
        let mut cmd = s3.starflow();
        cmd.args(["--threads", "3"]);
        assert_same_table(bundled(), &table_via(&mut cmd, "", &format!("'s3://{BUCKET}/{key}'")), key);
    }
    let missing = s3.starflow().args(["sql", &format!("SELECT * FROM 's3://{BUCKET}/dr19/none.fits'")]).output().unwrap();
    assert_eq!(missing.status.code(), Some(4), "{}", String::from_utf8_lossy(&missing.stderr));
}

/// `http(s)://` tables, as a web server serves survey files: a plain file read with ranged GETs only, a gzipped one
/// streamed.
#[test]
fn fits_over_http_plain_and_gzipped() {
    let server = HttpFiles::start(fixtures().to_path_buf());
    for name in ["bundled.fits", "bundled.fits.gz"] {
        let mut cmd = starflow();
        cmd.args(["--threads", "3"]);
        assert_same_table(bundled(), &table_via(&mut cmd, "", &format!("'{}/{name}'", server.url)), name);
        let gets: Vec<Request> = server.log().into_iter().filter(|r| r.method == "GET" && r.target == format!("/{name}")).collect();
        assert!(!gets.is_empty() && (name.ends_with(".gz") || gets.iter().all(|r| r.range.is_some())), "{name}: {gets:?}");
    }
    let missing = starflow().args(["sql", &format!("SELECT * FROM '{}/none.fits'", server.url)]).output().unwrap();
    assert_eq!(missing.status.code(), Some(4), "{}", String::from_utf8_lossy(&missing.stderr));
}

/// A plain file in S3 is read with ranged GETs of what the query needs, counted at a proxy in front of s3s-fs: the
/// headers for `count(*)` (NAXIS2 answers it), each row once for a full scan in parallel, one chunk for a `LIMIT`,
/// and for rows wider than 1 MiB only the needed field of each row.
#[test]
fn plain_files_in_s3_are_read_by_ranges_of_what_the_query_needs() {
    let s3 = S3Server::start();
    for name in ["wide.fits", "long.fits"] {
        s3.put_file(&format!("big/{name}"), Path::new(&fixture(name)));
    }
    let proxy = FaultProxy::start(&s3.endpoint, |_| Fault::Forward);
    let run = |threads: &str, sql: &str| -> (String, u64) {
        let before = proxy.log().len();
        let out = s3.starflow_via(&proxy.endpoint).args(["--threads", threads, "--format-out", "csv", "sql", sql]).output().unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        let gets: Vec<Request> = proxy.log()[before..].iter().map(|(r, _)| r.clone()).filter(|r| r.method == "GET" && r.target.starts_with(&format!("/{BUCKET}/big/"))).collect();
        assert!(gets.iter().all(|r| r.range.is_some()), "{sql}: only ranged reads: {gets:?}");
        let bytes = gets.iter().filter_map(|r| r.range.clone()).map(|r| r.end - r.start).sum();
        (String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap_or_default().to_string(), bytes)
    };
    let long = format!("'s3://{BUCKET}/big/long.fits'");
    let size = std::fs::metadata(fixture("long.fits")).unwrap().len();
    let rows_bytes = 1_500_000 * 16;

    let (count, bytes) = run("2", &format!("SELECT count(*) FROM {long}"));
    assert_eq!(count, "1500000");
    assert!(bytes < 512 << 10, "count(*) read {bytes} bytes of a {size}-byte file");

    let (sum, bytes) = run("3", &format!("SELECT sum(x), count(id) FROM {long}"));
    assert_eq!(sum, "562499625000.0,1500000");
    assert!((rows_bytes..size + (512 << 10)).contains(&bytes), "a full scan in 3 partitions read {bytes} bytes of {size}");

    let (first, bytes) = run("1", &format!("SELECT max(id) FROM (SELECT id FROM {long} LIMIT 3)"));
    assert_eq!(first, "2");
    assert!(bytes < 10 << 20, "LIMIT 3 read {bytes} bytes of {size}");

    let wide = format!("'s3://{BUCKET}/big/wide.fits'");
    let (ids, bytes) = run("1", &format!("SELECT sum(id) FROM {wide}"));
    assert_eq!(ids, "28");
    let size = std::fs::metadata(fixture("wide.fits")).unwrap().len();
    assert!(bytes < 512 << 10, "one 4-byte field of 8 rows of 1.2 MB read {bytes} bytes of {size}");
}

/// The catalogue of the FITS copy of the bundled stars (made once: two tests use it).
fn fits_catalogue() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = starflow().args(["-q", "catalog", &fixture("bundled.fits"), &dir.path().display().to_string()]).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        dir
    })
    .path()
}

#[test]
fn the_catalogue_of_a_fits_copy_equals_the_catalogue_of_the_parquet_file() {
    let from_parquet = tempfile::tempdir().unwrap();
    let run = starflow()
        .args(["-q", "catalog", &bundled_catalogue().display().to_string(), &from_parquet.path().display().to_string()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    for file in VAC_FILES {
        let (a, b) = (read_all(&from_parquet.path().join(file)), read_all(&fits_catalogue().join(file)));
        assert_eq!(a.num_rows(), 6603);
        assert_eq!(a.schema().fields(), b.schema().fields(), "{file}: the same columns, types, units and descriptions");
        assert_same_table(&a, &b, file);
        let (ma, mb) = (a.schema().metadata().clone(), b.schema().metadata().clone());
        assert_eq!(ma.len(), mb.len());
        // astropy's header repeats the provenance, input included.
        let differs = |k: &str| k == "input" || k == "table_meta_yaml";
        assert!(ma.iter().all(|(k, v)| differs(k) || mb.get(k) == Some(v)), "{file}: the same provenance but the input");
    }
}

#[test]
fn broken_fits_files_are_data_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("bundled.fits")).unwrap();
    let gz = std::fs::read(fixture("bundled.fits.gz")).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("cut.fits", &good[..good.len() / 2], "truncated"),
        ("cut.fits.gz", &gz[..gz.len() / 2], "cannot decompress"),
        ("table.fits", b"sdss_id,teff\n1,4500\n", "not a FITS file"),
        ("zeros.fits", &[0u8; 5760], "not a FITS file"),
    ];
    for (name, bytes, message) in cases {
        let path: PathBuf = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for sql in [format!("SELECT sum(teff) FROM '{}'", path.display()), format!("SELECT count(*) FROM '{}'", path.display())] {
            let out = starflow().args(["sql", &sql]).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(4), "{name}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
            assert!(stderr.contains(&path.display().to_string()) && stderr.contains(message), "{name}: {stderr}");
        }
    }
    let out = starflow().args(["-q", "catalog", &dir.path().join("cut.fits").display().to_string(), &dir.path().join("out").display().to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("out/StarFlow_summary.parquet").exists());
}

/// FITS units and comments reach starflow's Parquet output, and astropy reads them from it (and from the catalogue,
/// with null strings, and as VOParquet, as TOPCAT does).
#[test]
fn units_reach_outputs_that_astropy_reads() {
    let out = tempfile::tempdir().unwrap();
    let sql = format!("SELECT name, real, double, ulong FROM '{}'", fixture("types.fits"));
    let selected: Vec<PathBuf> = ["selected.parquet", "selected.fits"].iter().map(|f| out.path().join(f)).collect();
    for path in &selected {
        let run = starflow().args(["-q", "-o", &path.display().to_string(), "sql", &sql]).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    let check = Command::new(python())
        .arg(common::repo_root().join("tests/data/fits/check_astropy.py"))
        .args(&selected)
        .arg(fits_catalogue())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
}

/// `-o out.fits` writes a FITS binary table that reads back bit for bit (the bundled stars: strings, integers with
/// nulls as TNULL, floats); types FITS cannot hold, or nulls it cannot mark, are refused naming the column, and no file
/// is left.
#[test]
fn results_written_as_fits_read_back_the_same() {
    let out = tempfile::tempdir().unwrap();
    let written = out.path().join("stars.fits");
    let sql = format!("SELECT * FROM '{}'", bundled_catalogue().display());
    let run = starflow().args(["-q", "-o", &written.display().to_string(), "sql", &sql]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::metadata(&written).unwrap().len() % 2880, 0, "whole FITS blocks");
    assert_same_table(bundled(), &table(&written.display().to_string()), "the bundled stars written as FITS");

    let types = fixture("types.fits");
    for (column, message) in [("var_int", "column 'var_int' (List(Int32)) cannot be written to FITS"), ("long", "column 'long' has nulls and both")] {
        let refused = out.path().join(format!("{column}.fits"));
        let sql = format!("SELECT {column} FROM '{types}'");
        let run = starflow().args(["-q", "-o", &refused.display().to_string(), "sql", &sql]).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains(message), "{column}: {stderr}");
        assert!(!refused.exists(), "{column}: no file");
    }
    // Written through the staging path: nothing hidden is left beside the outputs.
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(".starflow-")), "{left:?}");

    // The output-target rules hold for FITS too: a symlink is written through (the link stays, its target replaced).
    #[cfg(unix)]
    {
        let target = out.path().join("real.fits");
        std::fs::write(&target, b"old").unwrap();
        let link = out.path().join("link.fits");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let run = starflow().args(["-q", "-o", &link.display().to_string(), "sql", &sql]).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
        assert_same_table(bundled(), &table(&target.display().to_string()), "FITS written through a symlink");
    }
}
