//! `manifest.json` of a model directory (docs/MODEL_FORMAT.md), parsed and validated before any session is created.

use std::path::Path;

use serde::Deserialize;

pub const FORMAT_VERSION: u32 = 1;
/// The five input labels, in the order the flow expects them.
pub const LABELS: [&str; 5] = ["teff", "logg", "fe_h", "c_fe", "n_fe"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub onnx: OnnxInfo,
    pub labels: Vec<Dimension>,
    pub target: Target,
    pub default_draws: usize,
    pub density: Density,
    #[serde(default)]
    pub provenance: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OnnxInfo {
    pub file: String,
    #[serde(default)]
    pub sha256: Option<String>,
    pub input: String,
    pub output: String,
}

/// One standardized dimension of the flow.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub unit: String,
    pub mean: f64,
    pub std: f64,
    pub train_min: f64,
    pub train_max: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// The flow sees the target as is (age in Gyr).
    Linear,
    /// The flow sees log10 of the target (mass); the grid stays linear.
    Log10,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Target {
    #[serde(flatten)]
    pub dim: Dimension,
    pub transform: Transform,
    pub grid: Grid,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct Grid {
    pub start: f64,
    pub stop: f64,
    pub num: usize,
}

impl Grid {
    /// `linspace(start, stop, num)`, computed as numpy does (`start + i * step`, last point exact).
    pub fn points(&self) -> Vec<f64> {
        let step = self.step();
        let mut v: Vec<f64> = (0..self.num).map(|i| self.start + i as f64 * step).collect();
        if let Some(last) = v.last_mut() {
            *last = self.stop;
        }
        v
    }

    pub fn step(&self) -> f64 {
        (self.stop - self.start) / (self.num - 1) as f64
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Density {
    /// S of SCIENCE.md: samples seen in training.
    pub scale: f64,
    /// LOW_DENSITY below this.
    pub threshold: f64,
    #[serde(default)]
    pub threshold_quantile: Option<f64>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| format!("{}: invalid manifest: {e}", path.display()))?;
        manifest.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(manifest)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "unsupported format_version {} (this starflow reads version {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid model name '{}' (letters, digits and _)", self.name));
        }
        let names: Vec<&str> = self.labels.iter().map(|l| l.name.as_str()).collect();
        if names != LABELS {
            return Err(format!("labels must be {LABELS:?} in this order, found {names:?}"));
        }
        for dim in self.labels.iter().chain(std::iter::once(&self.target.dim)) {
            let values = [dim.mean, dim.std, dim.train_min, dim.train_max];
            if values.iter().any(|v| !v.is_finite()) || dim.std <= 0.0 || dim.train_min > dim.train_max {
                return Err(format!(
                    "dimension '{}': mean, std, train_min, train_max must be finite with std > 0 and min <= max",
                    dim.name
                ));
            }
        }
        let g = self.target.grid;
        if !(g.start.is_finite() && g.stop.is_finite() && g.stop > g.start && g.num >= 2) {
            return Err("target grid needs finite start < stop and num >= 2".into());
        }
        if self.target.transform == Transform::Log10 && g.start < 0.0 {
            return Err("a log10 target needs a grid of non-negative values".into());
        }
        crate::inference::rows_per_star(self.default_draws, g.num).map_err(|e| format!("default_draws and grid: {e}"))?;
        let d = &self.density;
        if !(d.scale.is_finite() && d.scale > 0.0 && d.threshold.is_finite() && d.threshold >= 0.0) {
            return Err("density scale must be finite and > 0, threshold finite and >= 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example_json() -> serde_json::Value {
        let dim = |name: &str, mean: f64| {
            serde_json::json!({"name": name, "unit": "", "mean": mean, "std": 1.0, "train_min": mean - 3.0, "train_max": mean + 3.0})
        };
        serde_json::json!({
            "format_version": 1, "name": "age", "version": "1.0.0",
            "onnx": {"file": "model.onnx", "input": "x", "output": "log_prob"},
            "labels": [dim("teff", 0.0), dim("logg", 0.0), dim("fe_h", 0.0), dim("c_fe", 0.0), dim("n_fe", 0.0)],
            "target": {"name": "age", "unit": "Gyr", "mean": 7.0, "std": 1.0, "train_min": 0.0, "train_max": 14.0,
                       "transform": "linear", "grid": {"start": 0.0, "stop": 14.0, "num": 250}},
            "default_draws": 50,
            "density": {"scale": 1.0e9, "threshold": 3.0e9, "threshold_quantile": 0.05}
        })
    }

    fn check(edit: impl FnOnce(&mut serde_json::Value)) -> Result<(), String> {
        let mut v = example_json();
        edit(&mut v);
        let m: Manifest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        m.validate()
    }

    #[test]
    fn accepts_a_complete_manifest_and_refuses_bad_constants() {
        check(|_| {}).unwrap();
        assert!(check(|v| v["format_version"] = 2.into()).unwrap_err().contains("unsupported format_version 2"));
        assert!(check(|v| v["labels"][0]["std"] = 0.0.into()).unwrap_err().contains("'teff'"));
        assert!(check(|v| v["labels"][1]["name"] = "logg_seis".into()).unwrap_err().contains("labels must be"));
        assert!(check(|v| v["target"]["grid"]["num"] = 1.into()).unwrap_err().contains("grid"));
        assert!(check(|v| v["density"]["scale"] = (-1.0).into()).unwrap_err().contains("density"));
        assert!(check(|v| v["default_draws"] = 0.into()).unwrap_err().contains("between 1 and"));
        // 10^12 grid points would be allocated (and 50 x 10^12 flow rows per star): refused, not an out-of-memory abort.
        assert!(check(|v| v["target"]["grid"]["num"] = 1_000_000_000_000u64.into()).unwrap_err().contains("draws x grid points"));
        assert!(check(|v| v.as_object_mut().unwrap().remove("density").map(|_| ()).unwrap()).unwrap_err().contains("density"));
    }

    #[test]
    fn grid_matches_numpy_linspace() {
        let g = Grid { start: 0.0, stop: 14.0, num: 250 };
        let p = g.points();
        assert_eq!(p.len(), 250);
        assert_eq!(p[0], 0.0);
        assert_eq!(p[249], 14.0);
        assert!((p[1] - 14.0 / 249.0).abs() < 1e-15);
    }
}
