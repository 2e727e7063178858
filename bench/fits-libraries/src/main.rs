//! Time the candidate Rust FITS libraries decoding every column of a binary table (HDU 1) into memory:
//!     fits-libraries FILE.fits [fitsio|fitsrs]...     (both by default)
//! prints one JSON object: per library, the seconds its reading took and a checksum (they must agree).
//! - fitsrs 0.4 (pure Rust): its row iterator, one `DataValue` per element;
//! - fitsio 0.21 (cfitsio 3.49, bundled): `read_col` per column, each into a `Vec` of the column's type.

use std::io::BufReader;
use std::time::Instant;

use fitsrs::{DataValue, Fits, HDU};

/// Sum of every numeric value (strings and logicals excluded), so the work cannot be optimised away.
fn fitsrs(path: &str) -> f64 {
    let mut hdus = Fits::from_reader(BufReader::new(std::fs::File::open(path).unwrap()));
    let mut sum = 0.0;
    while let Some(Ok(hdu)) = hdus.next() {
        if let HDU::XBinaryTable(hdu) = hdu {
            for value in hdus.get_data(&hdu).table_data() {
                sum += match value {
                    DataValue::Short { value, .. } => value as f64,
                    DataValue::Integer { value, .. } => value as f64,
                    DataValue::Long { value, .. } => value as f64,
                    DataValue::Float { value, .. } => value as f64,
                    DataValue::Double { value, .. } => value,
                    _ => 0.0,
                };
            }
            break;
        }
    }
    sum
}

fn fitsio(path: &str) -> f64 {
    let mut file = fitsio::FitsFile::open(path).unwrap();
    let hdu = file.hdu(1).unwrap();
    let columns: Vec<(String, String)> = match &hdu.info {
        fitsio::hdu::HduInfo::TableInfo { column_descriptions, .. } => column_descriptions
            .iter()
            .map(|c| (c.name.clone(), format!("{:?}", c.data_type.typ)))
            .collect(),
        _ => panic!("HDU 1 is not a table"),
    };
    let mut sum = 0.0;
    for (name, typ) in columns {
        sum += match typ.as_str() {
            "Short" => hdu.read_col::<i16>(&mut file, &name).unwrap().iter().map(|&v| v as f64).sum::<f64>(),
            "Int" => hdu.read_col::<i32>(&mut file, &name).unwrap().iter().map(|&v| v as f64).sum(),
            "Long" | "LongLong" => hdu.read_col::<i64>(&mut file, &name).unwrap().iter().map(|&v| v as f64).sum(),
            "Float" => hdu.read_col::<f32>(&mut file, &name).unwrap().iter().map(|&v| v as f64).sum(),
            "Double" => hdu.read_col::<f64>(&mut file, &name).unwrap().iter().sum(),
            "String" => {
                hdu.read_col::<String>(&mut file, &name).unwrap();
                0.0
            }
            _ => {
                hdu.read_col::<bool>(&mut file, &name).unwrap();
                0.0
            }
        };
    }
    sum
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: fits-libraries FILE.fits [fitsio|fitsrs]...");
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = vec!["fitsio".into(), "fitsrs".into()];
    }
    let mut out = Vec::new();
    for name in names {
        let read: fn(&str) -> f64 = match name.as_str() {
            "fitsio" => fitsio,
            "fitsrs" => fitsrs,
            other => panic!("unknown library {other}: fitsio or fitsrs"),
        };
        let start = Instant::now();
        let checksum = read(&path);
        out.push(format!("\"{name}\": {{\"seconds\": {:.3}, \"checksum\": {checksum:e}}}", start.elapsed().as_secs_f64()));
    }
    println!("{{{}}}", out.join(", "));
}
