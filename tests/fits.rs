//! FITS through the `starflow` command: URL tables, `--table`, `CREATE EXTERNAL TABLE ... STORED AS FITS`, the
//! catalogue of a FITS copy of the bundled stars (equal, bit for bit, to the catalogue of the Parquet file), S3
//! (s3s-fs), broken files (exit 4, one line naming the file), and units that reach the outputs and astropy.
//! The FITS files are written by astropy (`tests/data/fits/make_fits.py`) once per run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{BUCKET, S3Server, bundled_catalogue, read_parquet, starflow, stdout_of};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;

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

fn csv(cmd: &mut assert_cmd::Command) -> Vec<String> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    stdout_of(&out).lines().map(String::from).collect()
}

const SUMMARY_SQL: &str = "SELECT count(*), count(sdss4_apogee_id), sum(teff), min(logg), sum(CAST(flag_bad AS INT)) FROM";

#[test]
fn fits_tables_read_like_the_parquet_they_were_made_from() {
    let parquet = csv(starflow().args(["--format-out", "csv", "sql", &format!("{SUMMARY_SQL} '{}'", bundled_catalogue().display())]));
    assert_eq!(parquet[1].split(',').next(), Some("6603"));
    for file in ["bundled.fits", "bundled.fits.gz"] {
        let url = csv(starflow().args(["--format-out", "csv", "sql", &format!("{SUMMARY_SQL} '{}'", fixture(file))]));
        assert_eq!(url[1..], parquet[1..], "{file} as a URL table");
        // Four partitions: the plain file is read in byte ranges, in parallel.
        let table = csv(starflow().args(["--threads", "4", "--table", &format!("stars={}", fixture(file)), "--format-out", "csv", "sql", &format!("{SUMMARY_SQL} stars")]));
        assert_eq!(table[1..], parquet[1..], "{file} with --table");
    }
    let external = csv(starflow().args(["--format-out", "csv", "sql"]).arg(format!(
        "CREATE EXTERNAL TABLE s STORED AS FITS LOCATION '{}' OPTIONS ('hdu' '1'); {SUMMARY_SQL} s",
        fixture("bundled.fits.gz")
    )));
    assert_eq!(external[1..], parquet[1..], "CREATE EXTERNAL TABLE");
}

fn read_all(path: &Path) -> RecordBatch {
    let batches = read_parquet(path);
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn the_catalogue_of_a_fits_copy_equals_the_catalogue_of_the_parquet_file() {
    let out = tempfile::tempdir().unwrap();
    let (from_parquet, from_fits) = (out.path().join("parquet"), out.path().join("fits"));
    for (input, dir) in [(bundled_catalogue().display().to_string(), &from_parquet), (fixture("bundled.fits"), &from_fits)] {
        let run = starflow().args(["-q", "catalog", &input, &dir.display().to_string()]).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    for file in ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"] {
        let (a, b) = (read_all(&from_parquet.join(file)), read_all(&from_fits.join(file)));
        assert_eq!(a.num_rows(), 6603);
        assert_eq!(a.schema().fields(), b.schema().fields(), "{file}: the same columns, types, units and descriptions");
        for (i, field) in a.schema().fields().iter().enumerate() {
            // ArrayData equality compares the values' bytes: NaN payloads and -0.0 included.
            assert_eq!(a.column(i).to_data(), b.column(i).to_data(), "{file}: column {}", field.name());
        }
        let (ma, mb) = (a.schema().metadata().clone(), b.schema().metadata().clone());
        assert_eq!(ma.len(), mb.len());
        assert!(ma.iter().all(|(k, v)| k == "input" || mb.get(k) == Some(v)), "{file}: the same provenance but the input");
    }
}

#[test]
fn fits_in_s3_plain_gzipped_and_split_into_ranges() {
    let s3 = S3Server::start();
    s3.put_file("dr19/bundled.fits", Path::new(&fixture("bundled.fits")));
    s3.put_file("dr19/bundled.fits.gz", Path::new(&fixture("bundled.fits.gz")));
    let local = csv(starflow().args(["--format-out", "csv", "sql", &format!("{SUMMARY_SQL} '{}'", fixture("bundled.fits"))]));
    for key in ["dr19/bundled.fits", "dr19/bundled.fits.gz"] {
        let remote = csv(s3.starflow().args(["--threads", "3", "--format-out", "csv", "sql", &format!("{SUMMARY_SQL} 's3://{BUCKET}/{key}'")]));
        assert_eq!(remote, local, "{key}");
    }
    let missing = s3.starflow().args(["sql", &format!("SELECT * FROM 's3://{BUCKET}/dr19/none.fits'")]).output().unwrap();
    assert_eq!(missing.status.code(), Some(4), "{}", String::from_utf8_lossy(&missing.stderr));
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
    let selected = out.path().join("selected.parquet");
    let run = starflow()
        .args(["-q", "-o", &selected.display().to_string(), "sql", &format!("SELECT name, real, double, ulong FROM '{}'", fixture("types.fits"))])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let catalogue = out.path().join("cat");
    let run = starflow().args(["-q", "catalog", &fixture("bundled.fits.gz"), &catalogue.display().to_string()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let check = Command::new(python())
        .arg(common::repo_root().join("tests/data/fits/check_astropy.py"))
        .arg(&selected)
        .arg(catalogue.join("StarFlow_summary.parquet"))
        .arg(catalogue.join("StarFlow_age_posterior.parquet"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
}
