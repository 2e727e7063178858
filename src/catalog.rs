//! `starflow catalog`: the StarFlow value-added catalogue of a DR19 (or DR17) catalogue as three Parquet files, each
//! row-matched to the input: `StarFlow_summary.parquet`, `StarFlow_age_posterior.parquet`, `StarFlow_mass_posterior.parquet`
//! (the VAC's names; the posterior files have the VAC's 250 grid columns, plus the key columns to join on).
//!
//! One query (`queries/starflow_vac.sql` over an input view) evaluates each model once per star; its batches are split
//! into the three files as they stream, in a staging area beside the output directory; they are moved in together at
//! the end, so a failed run leaves the directory's previous catalogue as it was. `--method` picks the model pair (v2:
//! `age`, `mass`; paper: `age_paper`, `mass_paper`); the input view sets the labels' release
//! (`starflow.label_release`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use starflow_udfs::manifest::Transform;
use starflow_udfs::model::Model;

use crate::session::{Session, substitute};
use crate::survey::{SURVEY_TABLE, define_view, kept_name, quoted};
use crate::error::{CliError, redact};
use crate::interrupt::interrupted;
use crate::output::staging::StagingArea;
use crate::output::target::DirTarget;
use crate::output::{OutputFile, OutputFormat, StagedFile, next_batch};
use crate::progress::Progress;
use crate::engine::Query;

pub const SUMMARY_FILE: &str = "StarFlow_summary.parquet";
pub const AGE_POSTERIOR_FILE: &str = "StarFlow_age_posterior.parquet";
pub const MASS_POSTERIOR_FILE: &str = "StarFlow_mass_posterior.parquet";

/// The SQL of the job, compiled in so that the binary runs it from anywhere; `queries/` holds the source.
const VAC_QUERY: &str = include_str!("../queries/starflow_vac.sql");

/// How the posteriors are made: the model pair a catalogue uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CatalogMethod {
    /// Method v2 (models `age`, `mass`): the labels' release offsets and systematics, draws only for the error beyond
    /// the training labels' noise, the joint density averaged over the draws (docs/METHOD.md).
    V2,
    /// The paper's method (models `age_paper`, `mass_paper`): the VAC-faithful numbers.
    Paper,
}

impl CatalogMethod {
    /// The age and mass models of the method.
    pub fn models(self) -> (&'static str, &'static str) {
        match self {
            Self::V2 => ("age", "mass"),
            Self::Paper => ("age_paper", "mass_paper"),
        }
    }
}

/// The key columns, the first of [`SUMMARY_COLUMNS`], carried into every file.
const KEYS: usize = 3;

/// (column, unit, description) of the summary file, in order: keys, the VAC's columns, then our extras (the
/// densities' percentiles, the posteriors' median and 16th/84th percentiles, the C-N levels); kept input columns
/// follow them. The query's columns must match these. Units
/// in the IVOA VOUnit / FITS spelling ("solMass"), which astropy and TOPCAT parse alike.
const SUMMARY_COLUMNS: [(&str, &str, &str); 23] = [
    ("sdss_id", "", "Unique SDSS-V ID (null for DR17 input)"),
    ("sdss4_apogee_id", "", "SDSS-4 DR17 APOGEE ID (2MASS-style)"),
    ("catalogid", "", "Catalog identifier used to target the source (null for DR17 input)"),
    ("age", "Gyr", "Maximum-likelihood age: the maximum of the age posterior on its 0-14 Gyr grid"),
    ("e_p_age", "Gyr", "Upper 1-sigma offset of the age (>= 0): the upper bound is age + e_p_age"),
    ("e_n_age", "Gyr", "Lower 1-sigma offset of the age (<= 0, signed): the lower bound is age + e_n_age"),
    ("mass", "solMass", "Maximum-likelihood mass: the maximum of the mass posterior on its 0-3 Msun grid"),
    ("e_p_mass", "solMass", "Upper 1-sigma offset of the mass (>= 0)"),
    ("e_n_mass", "solMass", "Lower 1-sigma offset of the mass (<= 0, signed)"),
    (
        "training_density",
        "",
        "Training-space density of the age model at the star's labels (paper section 4.5; LOW_DENSITY below the \
         model's threshold, see the file metadata)",
    ),
    (
        "bitmask",
        "",
        "Age model flags: 1 LOW_DENSITY, 2 GRID_EDGE, 4 BAD_INPUT (unusable labels or ASPCAP flag_bad: no estimate), \
         8 OUT_OF_RANGE, 16 MULTIMODAL, 32 CN_ATYPICAL (measured [C/Fe], [N/Fe] atypical for the star's other labels), \
         64 LABEL_MARGINALISED (a missing log g, [C/Fe] or [N/Fe] integrated out)",
    ),
    ("mass_training_density", "", "Training-space density of the mass model at the star's labels"),
    ("mass_bitmask", "", "Mass model flags (bits as for bitmask)"),
    // 0-100 without a unit: astropy reads "%" from the VOTable header and from its own metadata as two unequal units.
    (
        "training_density_percentile",
        "",
        "Percentage of the age model's training stars with a lower training density (not in the VAC): a scale-free \
         density; LOW_DENSITY below the model's threshold percentile (5)",
    ),
    ("mass_training_density_percentile", "", "Percentage of the mass model's training stars with a lower training density (not in the VAC)"),
    (
        "age_median",
        "Gyr",
        "Median of the age posterior (not in the VAC): the least biased point estimate of a skewed posterior",
    ),
    ("age_p16", "Gyr", "16th percentile of the age posterior (the CDF at Phi(-1) = 0.1587; not in the VAC)"),
    ("age_p84", "Gyr", "84th percentile of the age posterior (the CDF at 1 - Phi(-1) = 0.8413; not in the VAC)"),
    ("mass_median", "solMass", "Median of the mass posterior (not in the VAC)"),
    ("mass_p16", "solMass", "16th percentile of the mass posterior (the CDF at Phi(-1) = 0.1587; not in the VAC)"),
    ("mass_p84", "solMass", "84th percentile of the mass posterior (the CDF at 1 - Phi(-1) = 0.8413; not in the VAC)"),
    (
        "age_cn_level",
        "",
        "Level of the measured ([C/Fe], [N/Fe]) in the star's C-N plane under the age model (not in the VAC): the \
         probability of the more typical pairs; CN_ATYPICAL above the model's cn_threshold (file metadata). Null for the \
         paper's method, a missing label, or with starflow.cn_flag off",
    ),
    ("mass_cn_level", "", "Level of the measured ([C/Fe], [N/Fe]) in the star's C-N plane under the mass model (not in the VAC)"),
];

/// What a run wrote.
pub struct Written {
    pub rows: u64,
    pub files: Vec<String>,
}

/// The catalogue query over the view `starflow_input` ([`crate::survey::define_input`]) with the method's models and
/// the kept input columns.
pub fn catalog_sql(method: CatalogMethod, keep: &[String]) -> Result<String, CliError> {
    let (age, mass) = method.models();
    let kept: String = keep.iter().map(|name| format!(", {}", quoted(&kept_name(name)))).collect();
    let defines = HashMap::from([
        ("age_model".to_string(), age.to_string()),
        ("mass_model".to_string(), mass.to_string()),
        ("kept".to_string(), kept),
    ]);
    substitute(VAC_QUERY, &defines)
}

/// VAC posterior column names: the age grid in Gyr with two decimals (`0_00`, `0_06`, ..., `14_00`), the mass grid by
/// log10(M/Msun) with three (`_inf`, `_1_919`, ..., `0_477`); '-' and '.' become '_'.
pub fn posterior_column_names(model: &Model) -> Vec<String> {
    let transform = model.manifest.target.transform;
    let name = |v: f64| match transform {
        Transform::Linear => format!("{v:.2}"),
        Transform::Log10 => format!("{:.3}", v.log10()),
    };
    model.weights.grid.iter().map(|&v| name(v).replace(['-', '.'], "_")).collect()
}

fn with_description(field: Field, unit: &str, description: &str) -> Field {
    let mut metadata = HashMap::from([("description".to_string(), description.to_string())]);
    if !unit.is_empty() {
        metadata.insert("unit".to_string(), unit.to_string());
    }
    field.with_metadata(metadata)
}

/// File-level metadata shared by the three files: what made them, from what, by which method and label release.
fn provenance(session: &Session, input: &str, models: &[&Model]) -> Result<HashMap<String, String>, CliError> {
    let settings = session.starflow_settings();
    let mut releases = Vec::new();
    let mut draws = Vec::new();
    let models: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            // The release the view set, resolved as the functions resolve it (the paper's method uses none).
            let release = match &m.manifest.inference {
                Some(inference) => {
                    let setting = settings.label_release.trim().to_ascii_lowercase();
                    Some(inference.release(&setting).map_err(CliError::runtime)?.0.to_string())
                }
                None => None,
            };
            releases.push(release.clone().unwrap_or_else(|| "none (the paper's method takes the labels as given)".into()));
            let model_draws = settings.draws.unwrap_or(m.manifest.default_draws);
            draws.push(model_draws.to_string());
            Ok(serde_json::json!({
                "name": m.name(), "version": m.manifest.version, "method": m.manifest.method.as_str(),
                "label_release": release, "onnx_sha256": m.manifest.onnx.sha256,
                "grid": {"start": m.manifest.target.grid.start, "stop": m.manifest.target.grid.stop, "num": m.manifest.target.grid.num},
                "density_threshold": m.manifest.density.threshold,
                "draws": model_draws,
                "cn_threshold": m.manifest.cn.as_ref().map(|cn| cn.threshold),
            }))
        })
        .collect::<Result<_, CliError>>()?;
    let mut methods: Vec<&str> = models.iter().filter_map(|m| m["method"].as_str()).collect();
    methods.dedup();
    let methods = methods.join(", ");
    releases.dedup();
    draws.dedup();
    // The session's record (version, seed, C-N flag), with the numbers these models resolve the settings to.
    let mut recorded = session.recorded_settings();
    recorded.extend([
        ("input".to_string(), input.to_string()),
        ("models".to_string(), serde_json::Value::Array(models).to_string()),
        ("posterior_method".to_string(), methods),
        ("label_release".to_string(), releases.join(", ")),
        ("draws".to_string(), draws.join(", ")),
        ("method".to_string(), "StarFlow (Stone-Martinez et al. 2025); the math of docs/METHOD.md".to_string()),
    ]);
    Ok(recorded)
}

/// One of the three outputs: which query columns it takes and how they are laid out.
struct Part {
    file: OutputFile,
    schema: SchemaRef,
    /// Query column indices copied as they are.
    columns: Vec<usize>,
    /// A posterior list column spread over the grid columns, with the grid length.
    posterior: Option<(usize, usize)>,
}

impl Part {
    fn batch(&self, batch: &RecordBatch) -> Result<RecordBatch, CliError> {
        let mut columns: Vec<ArrayRef> = self.columns.iter().map(|&i| Arc::clone(batch.column(i))).collect();
        if let Some((index, n)) = self.posterior {
            columns.extend(spread(batch.column(index), n)?);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| CliError::runtime(e.to_string()))
    }
}

/// A list column of `n`-point posteriors as `n` Float64 columns (a null list is null in each).
fn spread(list: &ArrayRef, n: usize) -> Result<Vec<ArrayRef>, CliError> {
    let list = list.as_list_opt::<i32>().ok_or_else(|| CliError::runtime("a posterior column is not a list"))?;
    let values = list.values().as_primitive::<Float64Type>();
    let mut builders: Vec<Float64Builder> = (0..n).map(|_| Float64Builder::with_capacity(list.len())).collect();
    for row in 0..list.len() {
        if list.is_null(row) {
            builders.iter_mut().for_each(|b| b.append_null());
            continue;
        }
        let start = list.value_offsets()[row] as usize;
        if list.value_length(row) as usize != n {
            return Err(CliError::runtime(format!("a posterior has {} points, the grid {n}", list.value_length(row))));
        }
        for (j, b) in builders.iter_mut().enumerate() {
            b.append_option(values.is_valid(start + j).then(|| values.value(start + j)));
        }
    }
    Ok(builders.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef).collect())
}

fn column_index(schema: &Schema, name: &str) -> Result<usize, CliError> {
    schema.index_of(name).map_err(|_| CliError::runtime(format!("the catalogue query has no column '{name}'")))
}

/// Lay out the three files from the query's schema, in the staging area.
fn plan_parts(
    session: &Session,
    schema: &Schema,
    area: &StagingArea,
    (input, keep): (&str, &[String]),
    method: CatalogMethod,
) -> Result<Vec<Part>, CliError> {
    let models = session.engine.models();
    let (age, mass) = method.models();
    let (age, mass) = (models.require(age).map_err(CliError::runtime)?, models.require(mass).map_err(CliError::runtime)?);
    let metadata = provenance(session, input, &[&age, &mass])?;

    // The query's columns of (name, unit, description): their indices and their described fields.
    let described = |columns: &[(&str, &str, &str)]| -> Result<(Vec<usize>, Vec<Field>), CliError> {
        let mut found = (Vec::new(), Vec::new());
        for &(name, unit, description) in columns {
            let i = column_index(schema, name)?;
            found.0.push(i);
            found.1.push(with_description(schema.field(i).clone(), unit, description));
        }
        Ok(found)
    };
    let (mut summary_columns, mut summary_fields) = described(&SUMMARY_COLUMNS)?;
    for name in keep {
        let i = column_index(schema, &kept_name(name))?;
        summary_columns.push(i);
        summary_fields.push(schema.field(i).clone().with_name(name));
    }
    let summary_schema = Schema::new(summary_fields).with_metadata(HashMap::from_iter(
        metadata.clone().into_iter().chain([("description".to_string(), "StarFlow ages and masses (summary)".to_string())]),
    ));
    let mut parts = vec![Part { file: area.file(SUMMARY_FILE), schema: Arc::new(summary_schema), columns: summary_columns, posterior: None }];

    for (model, file_name, column, unit) in
        [(&age, AGE_POSTERIOR_FILE, "age_posterior", "Gyr"), (&mass, MASS_POSTERIOR_FILE, "mass_posterior", "Msun")]
    {
        let (keys, mut fields) = described(&SUMMARY_COLUMNS[..KEYS])?;
        let names = posterior_column_names(model);
        for (name, value) in names.iter().zip(&model.weights.grid) {
            let description = format!("Posterior probability at {value} {unit} (the {} values sum to 1)", names.len());
            fields.push(with_description(Field::new(name, DataType::Float64, true), "", &description));
        }
        let schema_metadata = metadata.clone().into_iter().chain([
            ("description".to_string(), format!("StarFlow {} posteriors on the grid of 'grid' [{unit}]", model.name())),
            ("grid".to_string(), serde_json::to_string(&model.weights.grid).expect("finite grid")),
        ]);
        parts.push(Part {
            file: area.file(file_name),
            schema: Arc::new(Schema::new(fields).with_metadata(schema_metadata.collect())),
            columns: keys,
            posterior: Some((column_index(schema, column)?, names.len())),
        });
    }
    Ok(parts)
}

/// Jobs a cluster runs side by side for a catalogue (one per input file); their results wait on the executors until
/// read, in file order.
const CLUSTER_JOBS: usize = 16;

/// The catalogue's query. In one process: one query over the input, its rows in input order (one partition). On a
/// cluster, which returns the partitions of a job in the order they finish: one query per input file (a job of one
/// task each, up to [`CLUSTER_JOBS`] at once), read one after the other in path order, so the rows come in the order
/// the single process gives them (docs/DISTRIBUTED.md).
struct Source<'a> {
    session: &'a Session,
    method: CatalogMethod,
    keep: &'a [String],
    /// Survey tables whose query has not started, in order (`None`: the view `starflow_input` the session defined).
    waiting: VecDeque<Option<String>>,
    /// Queries started, in order; the first is being read.
    running: VecDeque<Query>,
}

impl<'a> Source<'a> {
    async fn start(session: &'a Session, method: CatalogMethod, keep: &'a [String]) -> Result<Self, CliError> {
        let engine = &session.engine;
        let mut waiting = VecDeque::from([None]);
        if engine.on_cluster() {
            waiting.clear();
            for (i, file) in engine.table_files(SURVEY_TABLE).await?.iter().enumerate() {
                let name = format!("{SURVEY_TABLE}_{i}");
                crate::tables::register_table(engine, &name, file, session.settings.input_format).await?;
                waiting.push_back(Some(name));
            }
        }
        let mut source = Self { session, method, keep, waiting, running: VecDeque::new() };
        let jobs = if engine.on_cluster() { CLUSTER_JOBS } else { 1 };
        while source.running.len() < jobs && source.start_next().await? {}
        Ok(source)
    }

    /// Start the query of the next waiting table, if there is one. A query is planned when it starts, so the view
    /// redefined for the next file leaves the queries already started as they were.
    async fn start_next(&mut self) -> Result<bool, CliError> {
        let Some(table) = self.waiting.pop_front() else { return Ok(false) };
        let engine = &self.session.engine;
        if let Some(table) = table {
            let release = self.session.release.ok_or_else(|| CliError::runtime("the catalogue has no survey input"))?;
            define_view(engine, &table, release, self.keep).await?;
        }
        let mut statements = engine.parse(&catalog_sql(self.method, self.keep)?)?;
        let last = statements.pop_back().ok_or_else(|| CliError::runtime("the catalogue query is empty"))?;
        for statement in statements {
            engine.execute(statement).await?;
        }
        let query = engine.execute(last).await?.ok_or_else(|| CliError::runtime("the catalogue query returned nothing"))?;
        self.running.push_back(query);
        Ok(true)
    }

    fn first(&self) -> Result<&Query, CliError> {
        self.running.front().ok_or_else(|| CliError::runtime("the catalogue input has no files"))
    }

    async fn next(&mut self, cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> Result<Option<RecordBatch>, CliError> {
        while let Some(query) = self.running.front_mut() {
            if let Some(batch) = next_batch(&mut query.stream, cancel).await? {
                return Ok(Some(batch));
            }
            self.running.pop_front();
            self.start_next().await?;
        }
        Ok(None)
    }
}

/// Run the catalogue of the session's survey file (`input`, the view `starflow_input` defined over it with the `keep`
/// columns) into the directory `target` (named `output_dir`; local or object store). The three files are written
/// into a staging area beside the directory and moved in together at the end ([`StagingArea::install`]): a failed or
/// interrupted run leaves the directory's previous files as they were.
pub async fn run(
    session: &Session,
    (input, keep): (&str, &[String]),
    (target, output_dir): (&DirTarget, &str),
    method: CatalogMethod,
) -> Result<Written, CliError> {
    let engine = &session.engine;
    let mut source = Source::start(session, method, keep).await?;
    let area = StagingArea::create(target, &engine.context().runtime_env())?;
    // A presigned input URL's signature stays out of the files' provenance.
    let parts = plan_parts(session, &source.first()?.stream.schema(), &area, (&redact(input), keep), method)?;
    let mut staged: Vec<StagedFile> =
        parts.iter().map(|p| p.file.stage(OutputFormat::Parquet, Arc::clone(&p.schema))).collect::<Result<_, _>>()?;

    let progress = Progress::start(&source.first()?.plan, session.shows_progress());
    let cancel = interrupted();
    tokio::pin!(cancel);
    let mut rows = 0u64;
    let streamed = async {
        while let Some(batch) = source.next(&mut cancel).await? {
            rows += batch.num_rows() as u64;
            for (part, file) in parts.iter().zip(staged.iter_mut()) {
                file.write(&part.batch(&batch)?).await?;
            }
        }
        Ok::<(), CliError>(())
    }
    .await;
    progress.finish();
    let completed = match streamed {
        Ok(()) => complete_all(staged).await,
        Err(e) => {
            for file in staged {
                file.abort().await;
            }
            Err(e)
        }
    };
    if let Err(e) = completed {
        area.discard().await;
        return Err(e);
    }
    let names: Vec<(String, String)> = [SUMMARY_FILE, AGE_POSTERIOR_FILE, MASS_POSTERIOR_FILE]
        .iter()
        .map(|name| (name.to_string(), name.to_string()))
        .collect();
    area.install(&names).await?;
    let files = names.iter().map(|(_, name)| format!("{}/{name}", output_dir.trim_end_matches('/'))).collect();
    Ok(Written { rows, files })
}

/// Complete the staged files one by one; after a failure the rest are dropped.
async fn complete_all(staged: Vec<StagedFile>) -> Result<(), CliError> {
    let mut pending = staged.into_iter();
    while let Some(file) = pending.next() {
        if let Err(e) = file.finish().await {
            for file in pending {
                file.abort().await;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// `--keep` names: input columns carried into the summary after its own columns, each once and none named like one
/// of them.
pub fn check_keep(keep: &[String]) -> Result<(), CliError> {
    for (i, name) in keep.iter().enumerate() {
        if SUMMARY_COLUMNS.iter().any(|(c, ..)| c == name) {
            return Err(CliError::usage(format!("--keep {name}: the summary already has a column '{name}'")));
        }
        if keep[..i].contains(name) {
            return Err(CliError::usage(format!("--keep {name}: named twice")));
        }
    }
    Ok(())
}

/// The unit and description of a summary column, for `\d` of a table read back from a catalogue.
pub fn column_notes(name: &str) -> Option<(&'static str, &'static str)> {
    SUMMARY_COLUMNS.iter().find(|(n, ..)| *n == name).map(|&(_, unit, description)| (unit, description))
}
