//! FITS binary tables as DataFusion tables.
//!
//! A reader of our own for the BINTABLE layout (FITS 4.0, section 7.3), chosen by measurement over `fitsrs` and
//! `fitsio`/cfitsio (docs/PERFORMANCE.md): headers are 2880-byte blocks of 80-character cards, rows are fixed-width
//! big-endian records, so a plain file in any object store is read with ranged requests for just the rows (and, for
//! very wide rows, the bytes) a scan needs, split across partitions by byte range; a gzipped file is streamed through
//! DataFusion's decompression once. Every TFORM is decoded (L X B I J K A E D C M, repeat counts and TDIM as fixed-size
//! lists, P/Q variable-length arrays as lists), with TSCAL/TZERO (the unsigned-integer convention exactly), TNULL as
//! null; TUNIT, TCOMMn (or the TTYPEn comment) and TUCD become Arrow field metadata `unit`, `description`, `ucd`.
//!
//! `engine` integration: register [`FitsFormatFactory`] as a file format and `FITS` as a table factory.

mod decode;
mod format;
mod header;
mod input;
mod scan;
mod table;

use std::fmt;

use datafusion::common::DataFusionError;

pub use format::{FitsFormat, FitsFormatFactory, FitsOptions, FitsSource};

/// Which HDU is the table: the first binary table (default), an index (0 is the primary HDU, as in astropy), or an
/// EXTNAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HduSelector {
    FirstTable,
    Index(usize),
    Name(String),
}

impl HduSelector {
    pub fn parse(text: &str) -> Self {
        match text.trim().parse() {
            Ok(index) => Self::Index(index),
            Err(_) => Self::Name(text.trim().to_string()),
        }
    }
}

/// A FITS file that cannot be read as a table: corrupt, truncated, not FITS, or an unsupported construct.
#[derive(Debug)]
pub struct FitsError {
    pub file: String,
    pub message: String,
}

impl fmt::Display for FitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for FitsError {}

pub(crate) fn fits_error(file: &str, message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(FitsError { file: file.to_string(), message: message.into() }))
}

/// Make FITS known to a session: the `fits`, `fit` and `fts` file extensions (URL tables like `'x.fits'`,
/// `'x.fits.gz'`, listing tables) and `CREATE EXTERNAL TABLE ... STORED AS FITS`.
pub fn register(state: &mut datafusion::execution::session_state::SessionState) -> datafusion::common::Result<()> {
    for extension in ["fits", "fit", "fts"] {
        state.register_file_format(std::sync::Arc::new(FitsFormatFactory::with_extension(extension)), false)?;
    }
    state
        .table_factories_mut()
        .insert("FITS".to_string(), std::sync::Arc::new(datafusion::datasource::provider::DefaultTableFactory::new()));
    Ok(())
}
