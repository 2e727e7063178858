//! The `starflow` command line: argument definitions and what each subcommand does.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use starflow_udfs::Device;

use crate::catalog::Release;
use crate::engine::{Engine, EngineOptions};
use crate::error::CliError;
use crate::object_stores::StoreOptions;
use crate::output::{Destination, OutputFile, OutputFormat, Sink};
use crate::progress::Progress;
use crate::tables::{InputFormat, parse_table_arg, register_table};

#[derive(Parser, Debug)]
#[command(
    name = "starflow",
    version,
    about = "SQL over stellar catalogues (Parquet/CSV/FITS, local or object storage) with StarFlow ages and masses as columns",
    after_help = "Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 SQL error (syntax, unknown table/column), \
                  4 data error (missing or unreadable input, access denied, unreachable endpoint), 5 output error, \
                  130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run SQL statements given on the command line (separated by `;`).
    Sql {
        /// One or more SQL statements.
        #[arg(value_name = "SQL")]
        sql: String,
    },
    /// Run the statements of SQL files in order, substituting `${name}` with --define values.
    Run {
        /// The SQL files (e.g. an input view, then a query).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `name=value` substituted for `${name}` in the file (`${name:-default}` gives a default). Repeatable.
        #[arg(short = 'D', long = "define", value_name = "NAME=VALUE", value_parser = parse_define)]
        defines: Vec<(String, String)>,
    },
    /// An interactive SQL shell (history, multi-line statements ending with `;`, `\dt` lists tables, `\q` quits).
    Shell,
    /// Make the StarFlow catalogue of a survey file: StarFlow_summary.parquet, StarFlow_age_posterior.parquet and
    /// StarFlow_mass_posterior.parquet in OUTPUT_DIR, each row-matched to INPUT (queries/starflow_vac.sql).
    Catalog {
        /// The survey file (Parquet or FITS file, .fits.gz too, directory or glob; local or s3://, gs://, az://,
        /// http(s)://). A FITS file is read from its first binary table with rows (DR19: HDU 2, the APOGEE results).
        input: String,
        /// Where the three files go (a local directory, created if needed, or an object-store prefix).
        output_dir: String,
        /// The input's layout: dr19 (astraAllStarASPCAP) or dr17 (allStar).
        #[arg(long, value_enum, default_value = "dr19")]
        release: Release,
    },
    /// List the loaded models with their provenance, and check that each runs on the chosen device.
    Models,
    /// Print the documentation of every StarFlow SQL function (Markdown).
    Functions,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Register a table: NAME=URL, where URL is a Parquet, CSV or FITS (.fits, .fits.gz) file, a directory or a glob,
    /// local or s3://, gs://, az://, http(s)://. Repeatable. For another FITS HDU than the first binary table with
    /// rows: CREATE EXTERNAL TABLE t STORED AS FITS LOCATION 'URL' OPTIONS ('hdu' '2') (an index or an EXTNAME).
    #[arg(long = "table", value_name = "NAME=URL", value_parser = parse_table_arg, global = true)]
    pub tables: Vec<(String, String)>,
    /// Format of --table inputs (default: from the file extension; directories are read as Parquet).
    #[arg(long, value_enum, global = true)]
    pub input_format: Option<InputFormat>,
    /// Output format (default: from the --output extension, else a table on stdout).
    #[arg(long = "format-out", value_enum, global = true)]
    pub format_out: Option<OutputFormat>,
    /// Write the last statement's result to PATH (local or s3://...), atomically: complete or absent.
    #[arg(short = 'o', long, value_name = "PATH", global = true)]
    pub output: Option<String>,
    /// No progress bar and no status messages on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Query threads [default: the number of cores].
    #[arg(long, value_name = "N", env = "STARFLOW_THREADS", global = true)]
    pub threads: Option<usize>,
    /// Memory limit of query operators, e.g. 512M or 4G; sorts and aggregations spill to disk beyond it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, global = true)]
    pub memory_limit: Option<usize>,
    /// Rows per record batch, the unit of parallel work [default: 1024].
    #[arg(long, value_name = "N", global = true)]
    pub batch_size: Option<usize>,
    /// Rows shown by the table output format.
    #[arg(long, value_name = "N", default_value_t = 40, global = true)]
    pub max_rows: usize,
    /// S3 endpoint URL for S3-compatible stores (default: AWS_ENDPOINT_URL / AWS_ENDPOINT, the profile, or AWS).
    /// Plain http is allowed only when this URL says http://.
    #[arg(long, value_name = "URL", global = true)]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: AWS_REGION, the profile, or us-east-1).
    #[arg(long, value_name = "REGION", global = true)]
    pub s3_region: Option<String>,
    /// Unsigned S3 requests, for public buckets.
    #[arg(long, global = true)]
    pub s3_unsigned: bool,
    /// Allow credentials from the cloud instance-metadata service when none are configured.
    #[arg(long, global = true)]
    pub s3_instance_metadata: bool,
    /// Retries of a failed object-store request.
    #[arg(long, value_name = "N", default_value_t = 3, global = true)]
    pub io_retries: usize,
    /// Time limit of one object-store request, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, global = true)]
    pub io_timeout: f64,
    /// Directory of models (one sub-directory per model, see docs/MODEL_FORMAT.md) [default: $STARFLOW_MODELS, else
    /// the first models/ beside the executable, in the source checkout holding the working directory, or in
    /// ~/.local/share/starflow; `starflow models` says which].
    #[arg(long, value_name = "DIR", global = true)]
    pub models: Option<PathBuf>,
    /// Device for flow inference: cpu, cuda or cuda:N. A CUDA request that cannot be honoured is an error.
    #[arg(long, value_name = "DEVICE", env = "STARFLOW_DEVICE", default_value = "cpu", value_parser = parse_device, global = true)]
    pub device: Device,
    /// Time limit for connecting to an object-store endpoint, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, global = true)]
    pub connect_timeout: f64,
}

fn parse_device(arg: &str) -> Result<Device, String> {
    arg.parse()
}

fn parse_define(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got '{arg}'"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid variable name '{name}' (letters, digits and _ only)"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `512M`, `4G`, `1.5GiB`, `1000000` (bytes).
pub fn parse_size(arg: &str) -> Result<usize, String> {
    let s = arg.trim().to_ascii_uppercase();
    let s = s.trim_end_matches("IB").trim_end_matches('B');
    let (number, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let scale: f64 = match unit {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024f64.powi(4),
        _ => return Err(format!("invalid size '{arg}' (e.g. 512M, 4G)")),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("invalid size '{arg}' (e.g. 512M, 4G)"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("invalid size '{arg}': must be positive"));
    }
    Ok((value * scale) as usize)
}

fn seconds(value: f64, flag: &str) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| CliError::usage(format!("{flag} must be a positive number of seconds")))
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

/// Everything a session needs besides the engine: how results leave.
pub struct Session {
    pub engine: Engine,
    pub global: GlobalArgs,
}

impl Session {
    pub async fn open(global: GlobalArgs) -> Result<Self, CliError> {
        let defaults = EngineOptions::default();
        let options = EngineOptions {
            threads: global.threads.filter(|&n| n > 0).unwrap_or(defaults.threads),
            memory_limit: global.memory_limit,
            batch_size: global.batch_size.filter(|&n| n > 0),
            stores: StoreOptions {
                s3_endpoint: global.s3_endpoint.clone(),
                s3_region: global.s3_region.clone(),
                s3_unsigned: global.s3_unsigned,
                s3_instance_metadata: global.s3_instance_metadata,
                retries: global.io_retries,
                request_timeout: seconds(global.io_timeout, "--io-timeout")?,
                connect_timeout: seconds(global.connect_timeout, "--connect-timeout")?,
            },
            models_dir: global.models.clone(),
            device: global.device,
            announce_models: !global.quiet,
        };
        let engine = Engine::new(&options)?;
        for (name, url) in &global.tables {
            register_table(engine.context(), name, url, global.input_format).await?;
        }
        Ok(Self { engine, global })
    }

    pub fn status(&self, message: &str) {
        if !self.global.quiet {
            eprintln!("{message}");
        }
    }

    /// Run every statement of `sql`. With --output, the last statement's result goes there; other results are shown.
    pub async fn run_script(&self, sql: &str) -> Result<(), CliError> {
        let statements = self.engine.parse(sql)?;
        let count = statements.len();
        let mut wrote_output = false;
        for (i, statement) in statements.into_iter().enumerate() {
            let last = i + 1 == count;
            let Some(query) = self.engine.execute(statement).await? else { continue };
            let to_file = last && self.global.output.is_some();
            let sink = self.sink(to_file)?;
            let progress = Progress::start(&query.plan, !self.global.quiet && std::io::stderr().is_terminal());
            let result = sink.write(query.stream, ctrl_c()).await;
            progress.finish();
            let rows = result?;
            if let (true, Some(path)) = (to_file, &self.global.output) {
                wrote_output = true;
                self.status(&format!("wrote {rows} rows to {path}"));
            }
        }
        if let (false, Some(path)) = (wrote_output, &self.global.output) {
            self.status(&format!("warning: the last statement returned no rows; nothing written to {path}"));
        }
        Ok(())
    }

    fn sink(&self, to_file: bool) -> Result<Sink, CliError> {
        let (destination, inferred) = match (&self.global.output, to_file) {
            (Some(path), true) => (
                Destination::File(OutputFile::resolve(path, &self.engine.context().runtime_env())?),
                OutputFormat::from_path(path),
            ),
            _ => (Destination::Stdout, Some(OutputFormat::Table)),
        };
        let format = match (self.global.format_out, to_file) {
            (Some(f), true) => f,
            // --format-out describes the output file when there is one; other results are shown as tables.
            (Some(_), false) if self.global.output.is_some() => OutputFormat::Table,
            (Some(f), false) => f,
            (None, _) => inferred.ok_or_else(|| {
                CliError::usage("cannot tell the output format from the file name: pass --format-out")
            })?,
        };
        Ok(Sink { format, destination, max_rows: self.global.max_rows })
    }
}

pub(crate) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sql { sql } => Session::open(cli.global).await?.run_script(&sql).await,
        Command::Run { files, defines } => {
            let defines = defines.into_iter().collect();
            let mut sql = String::new();
            for file in &files {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
                sql.push_str(&substitute(&text, &defines)?);
                sql.push_str(";\n");
            }
            Session::open(cli.global).await?.run_script(&sql).await
        }
        Command::Shell => crate::shell::run(Session::open(cli.global).await?).await,
        Command::Catalog { input, output_dir, release } => {
            if !output_dir.contains("://") {
                std::fs::create_dir_all(&output_dir).map_err(|e| CliError::output(format!("{output_dir}: {e}")))?;
            }
            let session = Session::open(cli.global).await?;
            let written = crate::catalog::run(&session, &input, &output_dir, release).await?;
            session.status(&format!("wrote {} rows to each of {}", written.rows, written.files.join(", ")));
            Ok(())
        }
        Command::Models => {
            let session = Session::open(cli.global).await?;
            print!("{}", crate::catalog_info::describe_models(session.engine.models()));
            Ok(())
        }
        Command::Functions => {
            let session = Session::open(cli.global).await?;
            print!("{}", crate::catalog_info::describe_functions(session.engine.models()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("4g").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1G").is_err());
    }

    #[test]
    fn substitution() {
        let defines = HashMap::from([("input".to_string(), "s3://b/x.parquet".to_string())]);
        let sql = substitute("SELECT * FROM '${input}' LIMIT ${n:-10}", &defines).unwrap();
        assert_eq!(sql, "SELECT * FROM 's3://b/x.parquet' LIMIT 10");
        let err = substitute("SELECT ${missing}", &defines).unwrap_err();
        assert!(err.message.contains("--define missing=VALUE"), "{}", err.message);
        assert!(substitute("SELECT ${oops", &defines).is_err());
        assert!(parse_define("bad name=1").is_err());
    }
}
