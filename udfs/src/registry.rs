//! The models starflow serves: every `<dir>/<name>/manifest.json` under the models directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::manifest::Manifest;
use crate::model::Model;
use crate::onnx::Device;

#[derive(Debug, Default)]
pub struct ModelRegistry {
    /// The directory models were loaded from.
    pub source: Option<PathBuf>,
    pub device: Device,
    models: BTreeMap<String, Arc<Model>>,
}

/// `--models DIR`, else `STARFLOW_MODELS`, else `models/` beside the executable, else the repository's `models/`.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STARFLOW_MODELS") {
        return dir.into();
    }
    let beside_exe = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("models")));
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    beside_exe.filter(|d| d.is_dir()).unwrap_or_else(|| repository.canonicalize().unwrap_or(repository))
}

fn sha256_hex(path: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

impl ModelRegistry {
    /// Load every model directory under `dir`. A directory with a manifest that is invalid, or whose ONNX file is
    /// missing or does not match its recorded sha256, is an error naming the file: a model is served whole or not at all.
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
        Ok(Self { source: Some(dir.to_path_buf()), device, models })
    }

    pub fn load_model(dir: &Path, device: Device) -> Result<Model, String> {
        let manifest = Manifest::load(&dir.join("manifest.json"))?;
        let onnx = dir.join(&manifest.onnx.file);
        if !onnx.is_file() {
            return Err(format!("{}: model file missing (named by {})", onnx.display(), dir.join("manifest.json").display()));
        }
        if let Some(expected) = &manifest.onnx.sha256 {
            let actual = sha256_hex(&onnx)?;
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(format!("{}: sha256 {actual} does not match the manifest's {expected}", onnx.display()));
            }
        }
        Ok(Model::from_manifest(manifest, dir, device))
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
            let source = self.source.as_ref().map(|s| s.display().to_string()).unwrap_or_else(|| "none".into());
            format!("no model named '{name}' is loaded (models directory: {source}; loaded: {known:?})")
        })
    }
}
