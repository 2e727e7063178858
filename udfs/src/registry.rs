//! The models starflow serves (every `<dir>/<name>/manifest.json` under the models directory) and the inference pool
//! that evaluates them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::locate::{Found, Rule};
use crate::manifest::Manifest;
use crate::model::Model;
use crate::onnx::Device;

#[derive(Debug, Default)]
pub struct ModelRegistry {
    /// The directory models were loaded from, and the rule that chose it.
    pub source: Option<Found>,
    pub device: Device,
    models: BTreeMap<String, Arc<Model>>,
    pool: InferencePool,
}

/// Threads that evaluate flows, each with its own ONNX Runtime sessions. A function call hands its batch's stars to
/// the pool in chunks, so one query partition (e.g. a row-matched catalogue, which must keep its input order) still
/// uses every core, and the query threads only wait (InfluxDB's DedicatedExecutor idea, one level down).
#[derive(Debug)]
pub struct InferencePool {
    threads: usize,
    /// Started at the first evaluation: plain SQL sessions never start it.
    pool: OnceLock<Option<rayon::ThreadPool>>,
}

impl InferencePool {
    pub fn new(threads: usize) -> Self {
        Self { threads: threads.max(1), pool: OnceLock::new() }
    }

    /// Run `f` inside the pool (its parallel iterators use the pool's threads). If the threads cannot be started, `f`
    /// runs on the calling thread: slower, same numbers.
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let pool = self.pool.get_or_init(|| {
            let name = |i| format!("starflow-flow-{i}");
            rayon::ThreadPoolBuilder::new().num_threads(self.threads).thread_name(name).build().ok()
        });
        match pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

impl Default for InferencePool {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }
}

fn sha256_hex(path: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

impl ModelRegistry {
    /// Load every model directory under `dir`. A directory with a manifest that is invalid, or whose ONNX file is
    /// missing, does not match its recorded sha256 or fails [`Model::check`] on `device`, is an error naming the file:
    /// a model is served whole or not at all. ONNX Runtime must be loadable when there is a model to check.
    pub fn load(dir: &Path, device: Device) -> Result<Self, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("models directory {}: {e}", dir.display()))?;
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("manifest.json").is_file()).collect();
        dirs.sort();
        let mut models = BTreeMap::new();
        for model_dir in dirs {
            let model = Self::load_model(&model_dir, device)?;
            if let Some(previous) = models.insert(model.name().to_string(), Arc::new(model)) {
                return Err(format!("two models are named '{}' (one in {})", previous.name(), previous.dir.display()));
            }
        }
        let source = Found { path: dir.to_path_buf(), rule: Rule::Given };
        Ok(Self { source: Some(source), device, models, pool: InferencePool::default() })
    }

    pub fn load_model(dir: &Path, device: Device) -> Result<Model, String> {
        let manifest = Manifest::load(&dir.join("manifest.json"))?;
        let onnx = dir.join(&manifest.onnx.file);
        if !onnx.is_file() {
            return Err(format!("{}: model file missing (named by {})", onnx.display(), dir.join("manifest.json").display()));
        }
        let actual = sha256_hex(&onnx)?;
        if let Some(expected) = &manifest.onnx.sha256 {
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(format!("{}: sha256 {actual} does not match the manifest's {expected}", onnx.display()));
            }
        }
        let mut model = Model::from_manifest(manifest, dir, device);
        model.onnx_sha256 = actual;
        model.check()?;
        Ok(model)
    }

    /// Record which rule found the models directory (see [`crate::locate`]).
    pub fn found_by(mut self, rule: Rule) -> Self {
        if let Some(source) = &mut self.source {
            source.rule = rule;
        }
        self
    }

    /// Evaluate flows on `threads` threads (default: one per core).
    pub fn with_threads(self, threads: usize) -> Self {
        Self { pool: InferencePool::new(threads), ..self }
    }

    pub fn pool(&self) -> &InferencePool {
        &self.pool
    }

    /// Have each model say on stderr which device it runs on when first used.
    pub fn announcing(self, announce: bool) -> Self {
        self.models.values().for_each(|m| m.set_announce(announce));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.models.get(name).cloned()
    }

    pub fn models(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.values()
    }

    /// The model, or an error listing the ones there are.
    pub fn require(&self, name: &str) -> Result<Arc<Model>, String> {
        self.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            let source = self.source.as_ref().map(|s| s.path.display().to_string()).unwrap_or_else(|| "none".into());
            format!("no model named '{name}' is loaded (models directory: {source}; loaded: {known:?})")
        })
    }
}
