//! The survey file behind the view `starflow_input` (`--input`, `starflow catalog`): its data release, named or told
//! from its columns, and the release's input view (queries/dr19_inputs.sql, dr17_inputs.sql), which maps its columns
//! to the ten StarFlow arguments, turns its missing-value sentinels into nulls and sets the labels' release.

use std::collections::HashMap;

use datafusion::arrow::datatypes::Schema;

use crate::engine::Engine;
use crate::error::{CliError, data_error};
use crate::session::substitute;
use crate::tables::{InputFormat, register_table};

/// The name the survey file is registered under (its own columns stay queryable beside the view).
pub const SURVEY_TABLE: &str = "survey";

const DR19_INPUTS: &str = include_str!("../queries/dr19_inputs.sql");
const DR17_INPUTS: &str = include_str!("../queries/dr17_inputs.sql");

/// The columns each release's view reads (the unit test holds them to the SQL).
const DR19_COLUMNS: [&str; 14] = [
    "sdss_id", "sdss4_apogee_id", "catalogid", "teff", "e_teff", "logg", "e_logg", "fe_h", "e_fe_h", "c_h", "e_c_h", "n_h",
    "e_n_h", "flag_bad",
];
const DR17_COLUMNS: [&str; 12] = [
    "APOGEE_ID", "TEFF", "TEFF_ERR", "LOGG", "LOGG_ERR", "FE_H", "FE_H_ERR", "C_FE", "C_FE_ERR", "N_FE", "N_FE_ERR",
    "ASPCAPFLAG",
];

/// (column, unit, description) of the input view's labels and the DR19 columns they come from, for `\d` (the ids are
/// the catalogue's key columns, described there).
const INPUT_COLUMNS: [(&str, &str, &str); 15] = [
    ("teff", "K", "Effective temperature (ASPCAP)"),
    ("e_teff", "K", "1-sigma error of teff"),
    ("logg", "log(cm.s**-2)", "Surface gravity, log10 (ASPCAP)"),
    ("e_logg", "log(cm.s**-2)", "1-sigma error of logg"),
    ("fe_h", "dex", "[Fe/H] (ASPCAP)"),
    ("e_fe_h", "dex", "1-sigma error of fe_h"),
    ("c_fe", "dex", "[C/Fe] (DR19 view: c_h - fe_h)"),
    ("e_c_fe", "dex", "1-sigma error of c_fe (DR19 view: e_c_h and e_fe_h in quadrature)"),
    ("n_fe", "dex", "[N/Fe] (DR19 view: n_h - fe_h)"),
    ("e_n_fe", "dex", "1-sigma error of n_fe (DR19 view: e_n_h and e_fe_h in quadrature)"),
    ("flag_bad", "", "ASPCAP's bad-star flag (DR17: ASPCAPFLAG bit 23, STAR_BAD); the catalogue does not evaluate such stars"),
    ("c_h", "dex", "[C/H] (DR19)"),
    ("e_c_h", "dex", "1-sigma error of c_h"),
    ("n_h", "dex", "[N/H] (DR19)"),
    ("e_n_h", "dex", "1-sigma error of n_h"),
];

/// The unit and description starflow knows for an input column name.
pub fn column_notes(name: &str) -> Option<(&'static str, &'static str)> {
    INPUT_COLUMNS.iter().find(|(n, ..)| *n == name).map(|&(_, unit, description)| (unit, description))
}

/// The survey file layout of the input, and so its labels' data release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Release {
    /// Told from the columns: DR19's lower-case astraAllStarASPCAP names or DR17's upper-case allStar names.
    Auto,
    /// SDSS DR19 astraAllStarASPCAP (HDU 2, lower-case names; [C/Fe] and [N/Fe] derived from [C/H], [N/H]).
    Dr19,
    /// SDSS DR17 allStar (upper-case names; -9999 means missing).
    Dr17,
}

impl Release {
    fn layout(self) -> Option<(&'static str, &'static [&'static str], &'static str)> {
        match self {
            Self::Auto => None,
            Self::Dr19 => Some(("dr19", &DR19_COLUMNS, DR19_INPUTS)),
            Self::Dr17 => Some(("dr17", &DR17_COLUMNS, DR17_INPUTS)),
        }
    }

    pub fn name(self) -> &'static str {
        self.layout().map_or("auto", |(name, ..)| name)
    }
}

/// The columns of `columns` missing from `schema`.
fn missing<'a>(schema: &Schema, columns: &[&'a str]) -> Vec<&'a str> {
    columns.iter().copied().filter(|c| schema.field_with_name(c).is_err()).collect()
}

/// The release of a survey file with `schema`: `wanted` if its columns are there, else the one whose columns are.
pub fn resolve(schema: &Schema, wanted: Release, location: &str) -> Result<Release, CliError> {
    let fits = |r: Release| missing(schema, r.layout().expect("a release").1).is_empty();
    let found = [Release::Dr19, Release::Dr17].into_iter().find(|&r| fits(r));
    match (wanted, found) {
        (Release::Auto, Some(found)) => Ok(found),
        (Release::Auto, None) => Err(CliError::from(data_error(format!(
            "cannot tell the data release of '{location}' from its columns: a DR19 astraAllStarASPCAP file lacks {}; \
             a DR17 allStar file lacks {} (the file's columns must keep the survey's names)",
            missing(schema, &DR19_COLUMNS).join(", "),
            missing(schema, &DR17_COLUMNS).join(", ")
        )))),
        (wanted, _) if fits(wanted) => Ok(wanted),
        (wanted, found) => {
            let hint = match found {
                Some(found) => format!(": it has the {} columns, so pass --release {} (or auto)", found.name().to_uppercase(), found.name()),
                None => String::new(),
            };
            Err(CliError::from(data_error(format!(
                "'{location}' is not a {} file: it lacks {}{hint}",
                wanted.name().to_uppercase(),
                missing(schema, wanted.layout().expect("a release").1).join(", ")
            ))))
        }
    }
}

/// A hint for a query that asks one release's columns of the other release's file (the input view's SQL file run on
/// the wrong survey file): the column an error names as missing tells which.
pub fn release_hint(message: &str) -> Option<&'static str> {
    let missing = |c: &str| message.contains(&format!("No field named {c}")) || message.contains(&format!("No field named \"{c}\""));
    if ["sdss_id", "c_h", "n_h", "flag_bad"].iter().any(|c| missing(c)) {
        Some(" (if the file is a DR17 allStar file: `--input FILE` tells the release from its columns, or use queries/dr17_inputs.sql, or --release dr17)")
    } else if ["APOGEE_ID", "ASPCAPFLAG", "TEFF"].iter().any(|c| missing(c)) {
        Some(" (if the file is a DR19 astraAllStarASPCAP file: `--input FILE` tells the release from its columns, or use queries/dr19_inputs.sql, or --release dr19)")
    } else {
        None
    }
}

/// Register the survey file at `location` as [`SURVEY_TABLE`] and define `starflow_input` over it, with the input
/// columns `keep` carried through as `"keep:NAME"` (for `starflow catalog --keep`). Returns the release used.
pub async fn define_input(
    engine: &Engine,
    location: &str,
    format: Option<InputFormat>,
    release: Release,
    keep: &[String],
) -> Result<Release, CliError> {
    register_table(engine, SURVEY_TABLE, location, format).await?;
    let schema = engine.context().table(SURVEY_TABLE).await?.schema().as_arrow().clone();
    let release = resolve(&schema, release, location)?;
    for name in keep {
        schema.field_with_name(name).map_err(|_| {
            CliError::usage(format!("--keep {name}: '{location}' has no column '{name}' (names are case-sensitive)"))
        })?;
    }
    define_view(engine, SURVEY_TABLE, release, keep).await?;
    Ok(release)
}

/// (Re)define `starflow_input` over the registered table `table` of the (resolved) `release`, carrying `keep`. The
/// cluster's catalogue redefines it over each input file in turn.
pub async fn define_view(engine: &Engine, table: &str, release: Release, keep: &[String]) -> Result<(), CliError> {
    let (_, _, view) = release.layout().ok_or_else(|| CliError::runtime("the input view needs a resolved release"))?;
    let carried: String = keep.iter().map(|name| format!(", {} AS {}", quoted(name), quoted(&kept_name(name)))).collect();
    let defines = HashMap::from([("input".to_string(), table.to_string()), ("keep".to_string(), carried)]);
    engine.run_setup(&format!("DROP VIEW IF EXISTS starflow_input;\n{}", substitute(view, &defines)?)).await?;
    Ok(())
}

/// The name a kept input column has in `starflow_input` (apart from the view's own columns).
pub fn kept_name(name: &str) -> String {
    format!("keep:{name}")
}

/// A SQL identifier as written, whatever its characters.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    fn schema(columns: &[&str]) -> Schema {
        Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Float64, true)).collect::<Vec<_>>())
    }

    #[test]
    fn the_views_read_the_listed_columns() {
        for c in DR19_COLUMNS {
            assert!(DR19_INPUTS.contains(c), "{c}");
        }
        for c in DR17_COLUMNS {
            assert!(DR17_INPUTS.contains(&format!("\"{c}\"")), "{c}");
        }
    }

    #[test]
    fn releases_are_told_from_columns() {
        let (dr19, dr17) = (schema(&DR19_COLUMNS), schema(&DR17_COLUMNS));
        assert_eq!(resolve(&dr19, Release::Auto, "x").unwrap(), Release::Dr19);
        assert_eq!(resolve(&dr17, Release::Auto, "x").unwrap(), Release::Dr17);
        assert_eq!(resolve(&dr17, Release::Dr17, "x").unwrap(), Release::Dr17);
        let err = resolve(&dr17, Release::Dr19, "all.parquet").unwrap_err();
        assert!(err.message.contains("'all.parquet' is not a DR19 file: it lacks sdss_id"), "{}", err.message);
        assert!(err.message.contains("pass --release dr17"), "{}", err.message);
        let err = resolve(&schema(&["teff", "TEFF"]), Release::Auto, "x").unwrap_err();
        assert!(err.message.contains("cannot tell the data release") && err.message.contains("lacks sdss_id"), "{}", err.message);
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn hints_name_the_other_release() {
        assert!(release_hint("Schema error: No field named sdss_id. Valid fields are ...").unwrap().contains("dr17_inputs.sql"));
        assert!(release_hint("No field named \"APOGEE_ID\".").unwrap().contains("dr19_inputs.sql"));
        assert_eq!(release_hint("No field named foo"), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quoted("TEFF"), "\"TEFF\"");
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
        assert_eq!(kept_name("evol_state"), "keep:evol_state");
    }
}
