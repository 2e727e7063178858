//! The `starflow` command line: argument definitions and what each subcommand does.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use starflow_udfs::Device;

use crate::catalog::CatalogMethod;
use crate::engine::{EngineOptions, MAX_BATCH_SIZE, MAX_THREADS};
use crate::error::CliError;
use crate::object_stores::StoreOptions;
use crate::output::OutputFormat;
use crate::output::target::{DirTarget, Target};
use crate::session::{Session, SessionSettings, SurveyInput, substitute};
use crate::survey::Release;
use crate::tables::{InputFormat, parse_table_arg};

#[derive(Parser, Debug)]
#[command(
    name = "starflow",
    version,
    about = "SQL over stellar catalogues (Parquet/CSV/FITS, local or object storage) with StarFlow ages and masses as columns",
    after_help = "Exit codes: 0 ok, 1 runtime error, 2 usage error (also an option beyond its bound, an output name \
                  that cannot be written), 3 SQL error (syntax, unknown table/column, invalid setting, a statement \
                  nested too deep), 4 data error (missing, unreadable, corrupt or inconsistent input, access denied, \
                  unreachable endpoint), 5 output error, 130 interrupted (SIGINT, SIGTERM or SIGHUP; nothing \
                  half-written remains). Errors are one line; URL user-info and query strings in them show as ***."
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
    ///
    /// The summary has the VAC's columns (age and mass: the posterior's maximum and its signed 1-sigma offsets,
    /// training densities, bitmasks), then age_median, age_p16, age_p84, mass_median, mass_p16, mass_p84: the
    /// posteriors' medians (the less biased point estimate) and 16th/84th percentiles, and age_cn_level,
    /// mass_cn_level: the level of the star's measured [C/Fe], [N/Fe] in its C-N plane under each v2 model (CN_ATYPICAL,
    /// bit 32, above the model's threshold). Each file's metadata records the models (with their C-N thresholds), the
    /// method, the label release and whether the C-N planes were evaluated.
    Catalog {
        /// The survey file (Parquet or FITS file, .fits.gz too, directory or glob; local or s3://, gs://, az://,
        /// http(s)://). A FITS file is read from its first binary table with rows (DR19: HDU 2, the APOGEE results).
        input: String,
        /// Where the three files go: a local directory (created if needed) or an object-store prefix (s3://BUCKET/KEY,
        /// the key as typed). They are staged there in a hidden area and replace the previous three together, under
        /// a lock, or not at all: a failed or interrupted run leaves the previous ones, and concurrent runs do not mix.
        output_dir: String,
        /// How the posteriors are made: v2 (models age, mass) or paper (models age_paper, mass_paper: the VAC's
        /// method).
        #[arg(long, value_enum, default_value = "v2")]
        method: CatalogMethod,
        /// Skip the C-N planes (`SET starflow.cn_flag = false`): CN_ATYPICAL (32) is never set and the cn_level columns
        /// are null, for most of the time of a v2 catalogue of stars evaluated once (docs/PERFORMANCE.md).
        #[arg(long)]
        no_cn_flag: bool,
        /// Input columns to carry into StarFlow_summary.parquet after its own columns, by their names in the input
        /// (e.g. --keep teff,logg,fe_h for DR19, --keep TEFF,LOGG for DR17), to select or join on them later.
        #[arg(long, value_name = "COLUMN,...", value_delimiter = ',')]
        keep: Vec<String>,
    },
    /// List the loaded models with their provenance, and check that each runs on the chosen device.
    Models,
    /// Print the documentation of every StarFlow SQL function (Markdown).
    Functions,
    /// Run a Ballista scheduler for `--cluster` clients (docs/DISTRIBUTED.md); its sessions know the StarFlow functions
    /// of the models of --models. Runs until stopped.
    #[cfg(feature = "cluster")]
    Scheduler {
        /// The address to listen on (clients and executors connect here).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: String,
    },
    /// Run a Ballista executor: it takes tasks from the scheduler and evaluates the StarFlow functions with the models
    /// of --models (the same bytes as the client's, or its tasks are refused) and the object-store options given
    /// here. Runs until stopped.
    #[cfg(feature = "cluster")]
    Executor {
        /// The scheduler, df://HOST:PORT or HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// The address to serve results on (PORT; the next port is Ballista's executor gRPC port). The scheduler
        /// and clients connect here: on a network, an address they can reach.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
        bind: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Register a table: NAME=URL, where URL is a Parquet, CSV or FITS (.fits, .fits.gz) file, a directory or a glob,
    /// local or s3://, gs://, az://, http(s)://. Repeatable. For another FITS HDU than the first binary table with
    /// rows: CREATE EXTERNAL TABLE t STORED AS FITS LOCATION 'URL' OPTIONS ('hdu' '2') (an index or an EXTNAME).
    #[arg(long = "table", value_name = "NAME=URL", value_parser = parse_table_arg, global = true)]
    pub tables: Vec<(String, String)>,
    /// A survey file (DR19 astraAllStarASPCAP or DR17 allStar; Parquet, FITS or CSV, local or in a store): registered
    /// as the table `survey`, with the view `starflow_input` over it (the ten StarFlow arguments, ids and flag_bad;
    /// queries/dr19_inputs.sql, dr17_inputs.sql), which also sets the labels' release.
    #[arg(long = "input", id = "survey_input", value_name = "URL", global = true)]
    pub survey: Option<String>,
    /// The data release of --input and catalogue inputs: auto (told from the columns), dr19 or dr17.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub release: Release,
    /// Seed of the Monte-Carlo draws (`SET starflow.seed`) [default: 20251123]; recorded in every output file.
    #[arg(long, value_name = "N", env = "STARFLOW_SEED", global = true)]
    pub seed: Option<u64>,
    /// Draws per drawn star, 1 to 40000 (`SET starflow.draws`) [default: the model's, 50]; more draws, less
    /// Monte-Carlo scatter (docs/METHOD.md), proportionally more time. Recorded in every output file.
    #[arg(long, value_name = "N", value_parser = count(1, 40_000), global = true)]
    pub draws: Option<usize>,
    /// Format of --table and catalogue inputs (default: from the file extension; directories are read as Parquet;
    /// below a directory, names starting with '.' or '_' are skipped, and every file must have the same columns).
    #[arg(long, value_enum, global = true)]
    pub input_format: Option<InputFormat>,
    /// Output format (default: from the --output extension, else a table on stdout).
    #[arg(long = "format-out", value_enum, global = true)]
    pub format_out: Option<OutputFormat>,
    /// Write the last statement's result to PATH, atomically (complete or absent): a local file (staged beside it and
    /// renamed over it; a symlink is written through) or s3://BUCKET/KEY (gs://, az://; the key exactly as typed,
    /// '#', '?' and '%' included); `-` or /dev/stdout for stdout, /dev/stderr for stderr; an existing FIFO or
    /// character device is streamed into. An empty name, a directory, a dangling link, a URL without a bucket or a
    /// key, and `s3:` without `//` are usage errors (exit 2), checked before anything runs.
    #[arg(short = 'o', long, value_name = "PATH", global = true)]
    pub output: Option<String>,
    /// No progress bar and no status messages on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Query threads, 1 to 256 [default: the number of cores].
    #[arg(long, value_name = "N", env = "STARFLOW_THREADS", value_parser = count(1, MAX_THREADS as u64), global = true)]
    pub threads: Option<usize>,
    /// Memory limit of query operators, 1M to 64T, e.g. 512M or 4G; sorts and aggregations spill to disk beyond it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, global = true)]
    pub memory_limit: Option<usize>,
    /// Rows per record batch, the unit of parallel work, 1 to 65536 [default: 1024].
    #[arg(long, value_name = "N", value_parser = count(1, MAX_BATCH_SIZE as u64), global = true)]
    pub batch_size: Option<usize>,
    /// Rows shown by the table output format, 0 to 100000 (cells are cut at 200 characters).
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = count(0, MAX_SHOWN_ROWS), global = true)]
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
    /// Retries of a failed object-store request, 0 to 100.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = count(0, MAX_RETRIES), global = true)]
    pub io_retries: usize,
    /// Time limit of one object-store request, in seconds (above 0, at most 86400).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds(MAX_IO_TIMEOUT), global = true)]
    pub io_timeout: Duration,
    /// Directory of models (one sub-directory per model, see docs/MODEL_FORMAT.md) [default: $STARFLOW_MODELS, else
    /// the first models/ beside the executable, in the source checkout holding the working directory, or in
    /// ~/.local/share/starflow; `starflow models` says which].
    #[arg(long, value_name = "DIR", global = true)]
    pub models: Option<PathBuf>,
    /// Device for flow inference: cpu, cuda or cuda:N. A CUDA request that cannot be honoured is an error.
    #[arg(long, value_name = "DEVICE", env = "STARFLOW_DEVICE", default_value = "cpu", value_parser = parse_device, global = true)]
    pub device: Device,
    /// Run queries on a Ballista cluster: df://HOST:PORT of its scheduler (`starflow scheduler`). Statements are
    /// planned here and executed by the executors; results and outputs come back here (docs/DISTRIBUTED.md).
    #[arg(long, value_name = "URL", env = "STARFLOW_CLUSTER", value_parser = parse_cluster, global = true)]
    pub cluster: Option<String>,
    /// Time limit for connecting to an object-store endpoint, in seconds (above 0, at most 3600).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds(MAX_CONNECT_TIMEOUT), global = true)]
    pub connect_timeout: Duration,
}

/// Bounds of the numeric options (README, `--help`): beyond them a value is a usage error, never a crash or an
/// allocation the machine cannot make.
const MAX_SHOWN_ROWS: u64 = 100_000;
const MAX_RETRIES: u64 = 100;
const MAX_IO_TIMEOUT: f64 = 86_400.0;
const MAX_CONNECT_TIMEOUT: f64 = 3_600.0;
const MIN_MEMORY: f64 = (1u64 << 20) as f64;
const MAX_MEMORY: f64 = (64u64 << 40) as f64;

/// A whole number in `min..=max`.
fn count(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min..=max)
}

/// A number of seconds above 0 and at most `max`.
fn seconds(max: f64) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |arg: &str| match arg.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= max => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("'{arg}' is not a number of seconds above 0 and at most {max}")),
    }
}

#[cfg(feature = "cluster")]
fn parse_cluster(arg: &str) -> Result<String, String> {
    crate::cluster::parse_address(arg).map(|_| arg.to_string())
}

#[cfg(not(feature = "cluster"))]
fn parse_cluster(_: &str) -> Result<String, String> {
    Err("this starflow was built without the `cluster` feature".to_string())
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

/// `512M`, `4G`, `1.5GiB`, `1048576` (bytes), from 1 MiB to 64 TiB.
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
    let bytes = value * scale;
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
        return Err(format!("invalid size '{arg}': from 1M to 64T"));
    }
    Ok(bytes as usize)
}

impl GlobalArgs {
    fn engine_options(&self) -> EngineOptions {
        let defaults = EngineOptions::default();
        EngineOptions {
            threads: self.threads.unwrap_or(defaults.threads),
            memory_limit: self.memory_limit,
            batch_size: self.batch_size,
            stores: StoreOptions {
                s3_endpoint: self.s3_endpoint.clone(),
                s3_region: self.s3_region.clone(),
                s3_unsigned: self.s3_unsigned,
                s3_instance_metadata: self.s3_instance_metadata,
                retries: self.io_retries,
                request_timeout: self.io_timeout,
                connect_timeout: self.connect_timeout,
            },
            models_dir: self.models.clone(),
            device: self.device,
            announce_models: !self.quiet,
            cluster: self.cluster.clone(),
        }
    }

    fn session_settings(self) -> SessionSettings {
        let input = self.survey.map(|location| SurveyInput { location, release: self.release, keep: Vec::new() });
        SessionSettings {
            input,
            seed: self.seed,
            draws: self.draws,
            tables: self.tables,
            input_format: self.input_format,
            output: self.output,
            format_out: self.format_out,
            quiet: self.quiet,
            max_rows: self.max_rows,
        }
    }

    async fn open(self) -> Result<Session, CliError> {
        let options = self.engine_options();
        Session::open(&options, self.session_settings()).await
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    // Before the models load and any statement runs: an output name that cannot be written is a usage error at once.
    if let (Some(output), Command::Sql { .. } | Command::Run { .. } | Command::Shell) = (&cli.global.output, &cli.command) {
        Target::parse(output)?;
    }
    match cli.command {
        Command::Sql { sql } => cli.global.open().await?.run_script(&sql).await,
        Command::Run { files, defines } => {
            let defines = defines.into_iter().collect();
            let mut sql = String::new();
            for file in &files {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
                sql.push_str(&substitute(&text, &defines)?);
                sql.push_str(";\n");
            }
            cli.global.open().await?.run_script(&sql).await
        }
        Command::Shell => crate::shell::run(cli.global.open().await?).await,
        Command::Catalog { input, output_dir, method, no_cn_flag, keep } => {
            // Before the models load: a bad directory or --keep list is a usage error at once.
            let target = DirTarget::parse(&output_dir)?;
            crate::catalog::check_keep(&keep)?;
            if cli.global.survey.is_some() {
                return Err(CliError::usage("catalog takes its input as INPUT: drop --input"));
            }
            let (options, release) = (cli.global.engine_options(), cli.global.release);
            let mut settings = cli.global.session_settings();
            settings.input = Some(SurveyInput { location: input.clone(), release, keep: keep.clone() });
            let session = Session::open(&options, settings).await?;
            if no_cn_flag {
                session.run_script("SET starflow.cn_flag = false").await?;
            }
            let written = crate::catalog::run(&session, (&input, &keep), (&target, &output_dir), method).await?;
            session.status(&format!("wrote {} rows to each of {}", written.rows, written.files.join(", ")));
            Ok(())
        }
        Command::Models => {
            let session = cli.global.open().await?;
            print!("{}", crate::catalog_info::describe_models(session.engine.models()));
            Ok(())
        }
        Command::Functions => {
            let session = cli.global.open().await?;
            print!("{}", crate::catalog_info::describe_functions(session.engine.models()));
            Ok(())
        }
        #[cfg(feature = "cluster")]
        Command::Scheduler { bind } => crate::cluster::scheduler(&bind, &cli.global.engine_options()).await,
        #[cfg(feature = "cluster")]
        Command::Executor { scheduler, bind } => {
            crate::cluster::executor(&scheduler, &bind, &cli.global.engine_options()).await
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
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        for bad in ["12Q", "-1G", "1000", "0.5M", "65T", "1e300G", "NaN", "inf"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_options_are_bounded() {
        for args in [
            &["--threads", "0"][..],
            &["--threads", "20000"],
            &["--threads", "4294967296"],
            &["--batch-size", "0"],
            &["--batch-size", "65537"],
            &["--max-rows", "-1"],
            &["--io-retries", "4294967295"],
            &["--io-timeout", "1e18"],
            &["--io-timeout", "0"],
            &["--io-timeout", "NaN"],
            &["--connect-timeout", "inf"],
        ] {
            let err = Cli::try_parse_from(["starflow"].iter().chain(args).chain(&["models"])).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let ok = Cli::try_parse_from(["starflow", "--threads", "256", "--io-timeout", "0.5", "models"]).unwrap();
        assert_eq!((ok.global.threads, ok.global.io_timeout), (Some(256), Duration::from_millis(500)));
    }

    #[test]
    fn defines() {
        assert_eq!(parse_define("input=s3://b/x=1").unwrap(), ("input".into(), "s3://b/x=1".into()));
        assert!(parse_define("bad name=1").is_err());
    }
}
