//! Tables named on the command line (`--table NAME=URL`): Parquet, CSV or FITS files, directories or globs, in any store.

use crate::engine::Engine;
use crate::error::data_error;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use starflow_fits::FitsFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Parquet,
    Csv,
    /// FITS binary tables (the first BINTABLE HDU with rows; plain or gzipped).
    Fits,
}

impl InputFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
            Self::Fits => ".fits",
        }
    }

    fn file_format(self) -> Arc<dyn FileFormat> {
        match self {
            Self::Parquet => Arc::new(ParquetFormat::default()),
            Self::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
            Self::Fits => Arc::new(FitsFormat::default()),
        }
    }
}

/// `NAME=URL` as given to `--table`.
pub fn parse_table_arg(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, url)) if !name.trim().is_empty() && !url.trim().is_empty() => {
            Ok((name.trim().to_string(), url.trim().to_string()))
        }
        _ => Err(format!("expected NAME=URL, got '{arg}'")),
    }
}

/// The last path segment's extension, if the location names a file (not a directory or a glob of files). An http(s)
/// URL's query string (a presigned URL's signature) is not part of its path. For a gzipped file the extension under
/// `.gz`.
fn file_extension(location: &str) -> Option<String> {
    let path = match location.starts_with("http://") || location.starts_with("https://") {
        true => location.split(['?', '#']).next().unwrap_or(location),
        false => location,
    };
    let last = path.trim_end_matches('/').rsplit('/').next()?.to_ascii_lowercase();
    let last = last.strip_suffix(".gz").unwrap_or(&last);
    let (_, ext) = last.rsplit_once('.')?;
    Some(ext.to_string())
}

fn infer_format(location: &str) -> Result<InputFormat> {
    match file_extension(location).as_deref() {
        Some("parquet" | "parq") => Ok(InputFormat::Parquet),
        Some("csv") => Ok(InputFormat::Csv),
        Some("fits" | "fit" | "fts") => Ok(InputFormat::Fits),
        // A directory (or a glob without an extension) of a catalogue: Parquet unless told otherwise.
        None => Ok(InputFormat::Parquet),
        Some(other) => Err(data_error(format!(
            "unsupported input format '.{other}' for '{location}': use Parquet, CSV or FITS, or pass --input-format"
        ))),
    }
}

pub async fn register_table(engine: &Engine, name: &str, location: &str, format: Option<InputFormat>) -> Result<()> {
    let format = match format {
        Some(f) => f,
        None => infer_format(location)?,
    };
    // A single file is read whatever its extension, and a glob that names one (`dir/*.fits.gz`) picks its files itself;
    // directories and globs without an extension pick the files of the format.
    let is_pattern = location.ends_with('/') || location.contains(['*', '[']) || file_extension(location).is_none();
    let extension = if is_pattern && file_extension(location).is_none() { format.extension().to_string() } else { String::new() };
    let options = ListingOptions::new(crate::formats::checked(format.file_format())).with_file_extension(extension);
    engine.register_listing_table(name, location, options).await.map_err(|e| match e {
        DataFusionError::Plan(m) if m.contains("No files found") || m.contains("not found") => {
            data_error(format!("table '{name}': no {} files at '{location}'", format.extension()))
        }
        other => other.context(format!("table '{name}' ({location})")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_args_and_formats() {
        assert_eq!(parse_table_arg("stars=s3://b/k.parquet").unwrap(), ("stars".into(), "s3://b/k.parquet".into()));
        assert!(parse_table_arg("=x").is_err());
        assert!(parse_table_arg("stars").is_err());
        assert_eq!(infer_format("data/x.CSV").unwrap(), InputFormat::Csv);
        assert_eq!(infer_format("s3://b/dr19/").unwrap(), InputFormat::Parquet);
        assert_eq!(infer_format("s3://b/dr19/*.parquet").unwrap(), InputFormat::Parquet);
        assert_eq!(infer_format("s3://b/allStar.FITS").unwrap(), InputFormat::Fits);
        assert_eq!(infer_format("astraAllStarASPCAP-0.6.0.fits.gz").unwrap(), InputFormat::Fits);
        let err = infer_format("cat.vot").unwrap_err().to_string();
        assert!(err.contains("unsupported input format '.vot'"), "{err}");
        assert_eq!(infer_format("https://h/b/k.parquet?X-Amz-Signature=abc").unwrap(), InputFormat::Parquet);
        assert_eq!(infer_format("https://h/b/k.fits.gz?X-Amz-Signature=abc").unwrap(), InputFormat::Fits);
    }
}
