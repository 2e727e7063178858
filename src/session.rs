//! A session: the engine plus where results go. Below the command line (`cli`), which opens it, and used by the
//! commands that run SQL through it (`catalog`, `shell`), so none of those needs the command line's types.

use std::collections::HashMap;
use std::io::IsTerminal;

use crate::engine::{Engine, EngineOptions};
use crate::error::{CliError, escape_controls, redact};
use crate::interrupt::interrupted;
use crate::output::{Destination, OutputFormat, Sink};
use crate::progress::Progress;
use crate::survey::{Release, define_input};
use crate::tables::{InputFormat, register_table};
use starflow_udfs::StarflowConfig;

/// What a session does besides running SQL: the tables it starts with and how results leave.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings {
    /// `(name, url)` tables registered when the session opens.
    pub tables: Vec<(String, String)>,
    pub input_format: Option<InputFormat>,
    /// Where the last statement's result goes (`None`: shown on stdout).
    pub output: Option<String>,
    pub format_out: Option<OutputFormat>,
    /// No progress bar and no status messages.
    pub quiet: bool,
    /// Rows shown by the table format.
    pub max_rows: usize,
    /// The survey file behind the view `starflow_input` (`--input`, `starflow catalog`).
    pub input: Option<SurveyInput>,
    /// `starflow.seed` and `starflow.draws` from the command line.
    pub seed: Option<u64>,
    pub draws: Option<usize>,
}

/// A survey file to define `starflow_input` over.
#[derive(Debug, Clone)]
pub struct SurveyInput {
    pub location: String,
    pub release: Release,
    /// Input columns the view carries (`starflow catalog --keep`).
    pub keep: Vec<String>,
}

pub struct Session {
    pub engine: Engine,
    pub settings: SessionSettings,
    /// The release of the survey input, told from its columns or as named.
    pub release: Option<Release>,
}

impl Session {
    pub async fn open(options: &EngineOptions, settings: SessionSettings) -> Result<Self, CliError> {
        let engine = Engine::new(options)?;
        for (name, url) in &settings.tables {
            register_table(&engine, name, url, settings.input_format).await?;
        }
        let knobs = [("seed", settings.seed.map(|s| s.to_string())), ("draws", settings.draws.map(|d| d.to_string()))];
        let sets: String = knobs.iter().filter_map(|(name, value)| Some(format!("SET starflow.{name} = {};", value.as_ref()?))).collect();
        engine.run_setup(&sets).await?;
        let release = match &settings.input {
            Some(input) => Some(define_input(&engine, &input.location, settings.input_format, input.release, &input.keep).await?),
            None => None,
        };
        Ok(Self { engine, settings, release })
    }

    /// The session's `starflow.*` settings.
    pub fn starflow_settings(&self) -> StarflowConfig {
        self.engine.context().state().config().options().extensions.get::<StarflowConfig>().cloned().unwrap_or_default()
    }

    /// What a StarFlow result depends on besides its inputs, recorded in every Parquet and FITS file starflow
    /// writes: the version, the seed, the draws (a number, or each model's default), the labels' release (as set;
    /// empty: each model's default) and whether the C-N planes were evaluated.
    pub fn recorded_settings(&self) -> HashMap<String, String> {
        let s = self.starflow_settings();
        let draws = s.draws.map_or_else(|| "each model's default_draws (50 for the bundled models)".to_string(), |d| d.to_string());
        let release = match s.label_release.trim() {
            "" => "each model's default".to_string(),
            set => set.to_string(),
        };
        HashMap::from([
            ("starflow_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("seed".to_string(), s.seed.to_string()),
            ("draws".to_string(), draws),
            ("label_release".to_string(), release),
            ("cn_flag".to_string(), s.cn_flag.to_string()),
        ])
    }

    pub fn status(&self, message: &str) {
        if !self.settings.quiet {
            eprintln!("{}", escape_controls(&redact(message)));
        }
    }

    /// Whether to draw a progress bar: on a terminal, unless quiet.
    pub fn shows_progress(&self) -> bool {
        !self.settings.quiet && std::io::stderr().is_terminal()
    }

    /// Run every statement of `sql`. With an output, the last statement's result goes there; other results are shown.
    pub async fn run_script(&self, sql: &str) -> Result<(), CliError> {
        let statements = self.engine.parse(sql)?;
        let count = statements.len();
        let mut wrote_output = false;
        for (i, statement) in statements.into_iter().enumerate() {
            let last = i + 1 == count;
            let Some(query) = self.engine.execute(statement).await? else { continue };
            let to_file = last && self.settings.output.is_some();
            let sink = self.sink(to_file)?;
            let progress = Progress::start(&query.plan, self.shows_progress());
            let result = sink.write(query.stream, interrupted()).await;
            progress.finish();
            let rows = match query.copy {
                Some(copy) => copy.settle(result).await?,
                None => result?,
            };
            if let (true, Some(path)) = (to_file, &self.settings.output) {
                wrote_output = true;
                self.status(&format!("wrote {rows} rows to {path}"));
            }
        }
        if let (false, Some(path)) = (wrote_output, &self.settings.output) {
            self.status(&format!("warning: the last statement returned no rows; nothing written to {path}"));
        }
        Ok(())
    }

    fn sink(&self, to_file: bool) -> Result<Sink, CliError> {
        let settings = &self.settings;
        let (destination, inferred) = match (&settings.output, to_file) {
            (Some(path), true) => match Destination::resolve(path, &self.engine.context().runtime_env())? {
                file @ Destination::File(_) => (file, OutputFormat::from_path(path)),
                // stdout or a stream: shown as a table unless told otherwise
                other => (other, Some(OutputFormat::Table)),
            },
            _ => (Destination::Stdout, Some(OutputFormat::Table)),
        };
        let format = match (settings.format_out, to_file) {
            (Some(f), true) => f,
            // The output format describes the output file when there is one; other results are shown as tables.
            (Some(_), false) if settings.output.is_some() => OutputFormat::Table,
            (Some(f), false) => f,
            (None, _) => inferred.ok_or_else(|| {
                CliError::usage("cannot tell the output format from the file name: pass --format-out")
            })?,
        };
        Ok(Sink { format, destination, max_rows: settings.max_rows, metadata: self.recorded_settings() })
    }
}

/// Replace `${name}` (or `${name:-default}`) with defined values; an undefined name without a default is an error.
pub fn substitute(sql: &str, defines: &HashMap<String, String>) -> Result<String, CliError> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| CliError::usage("unterminated ${...} in SQL"))?;
        let (name, default) = match after[..end].split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (&after[..end], None),
        };
        match defines.get(name).map(String::as_str).or(default) {
            Some(value) => out.push_str(value),
            None => return Err(CliError::usage(format!("undefined variable ${{{name}}}: pass --define {name}=VALUE"))),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let defines = HashMap::from([("input".to_string(), "s3://b/x.parquet".to_string())]);
        let sql = substitute("SELECT * FROM '${input}' LIMIT ${n:-10}", &defines).unwrap();
        assert_eq!(sql, "SELECT * FROM 's3://b/x.parquet' LIMIT 10");
        let err = substitute("SELECT ${missing}", &defines).unwrap_err();
        assert!(err.message.contains("--define missing=VALUE"), "{}", err.message);
        assert!(substitute("SELECT ${oops", &defines).is_err());
    }
}
