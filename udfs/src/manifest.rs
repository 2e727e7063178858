//! `manifest.json` of a model directory (docs/MODEL_FORMAT.md), parsed and validated before any session is created.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::limits::{MAX_ROWS_PER_STAR, bounded_rows, rows_per_star};

pub const FORMAT_VERSION: u32 = 2;
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
    pub method: Method,
    /// Method v2's constants (absent for the paper's method).
    #[serde(default)]
    pub inference: Option<Inference>,
    /// Method v2: the [C/Fe]-[N/Fe] plane and the CN_ATYPICAL threshold (absent: the model sets no bit 32).
    #[serde(default)]
    pub cn: Option<Cn>,
    /// Method v2: per marginalisable label (`logg`, `c_fe`, `n_fe`), the values a missing one is integrated over and
    /// the four-label density threshold (absent, or a label absent: a star missing it is BAD_INPUT).
    #[serde(default)]
    pub marginal: Option<BTreeMap<String, MarginalAxis>>,
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// How a star's posterior is made from the flow (models/train/reference.py, rules 3 and 6).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Stone-Martinez et al. 2025: `default_draws` draws from the reported errors, each draw's conditional normalized
    /// on its own, then averaged.
    Paper,
    /// Labels moved onto the training release, draws only for the error in excess of the training labels' noise (one
    /// flow pass where there is none), the joint density averaged over the draws and normalized once.
    V2,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::V2 => "v2",
        }
    }
}

/// Method v2: the noise of the training labels and how the labels of each data release relate to them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Inference {
    /// Per label, the noise the training labels carried (the flow has learned it).
    pub sigma_train: [f64; 5],
    /// The release of inputs when `starflow.label_release` is not set.
    pub default_release: String,
    pub releases: BTreeMap<String, Release>,
}

/// One data release's labels against the training labels (models/train/releases.py), per label.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Release {
    /// Zero point against the training release: inputs are moved by subtracting it.
    pub offset: [f64; 5],
    /// Maps the release's reported errors onto the training release's scale.
    pub error_scale: [f64; 5],
    /// Noise no reported error carries (release-to-release scatter, or an honest prior where nothing was measured).
    pub sigma_sys: [f64; 5],
    /// Whether offset, scale and sigma_sys were measured on this release's data (else a prior).
    pub measured: [bool; 5],
    pub n_stars: u64,
    pub source: String,
}

impl Inference {
    /// The release named by `setting` (empty: the default), or an error listing the releases there are.
    pub fn release(&self, setting: &str) -> Result<(&str, &Release), String> {
        let name = if setting.is_empty() { self.default_release.as_str() } else { setting };
        self.releases.get_key_value(name).map(|(k, r)| (k.as_str(), r)).ok_or_else(|| {
            let known: Vec<&str> = self.releases.keys().map(String::as_str).collect();
            format!("unknown label release '{name}' (this model knows {})", known.join(", "))
        })
    }

    fn validate(&self) -> Result<(), String> {
        if !self.sigma_train.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(format!("inference.sigma_train must be 5 finite values > 0, found {:?}", self.sigma_train));
        }
        if self.releases.is_empty() {
            return Err("inference.releases is empty".into());
        }
        for (name, r) in &self.releases {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(format!("invalid release name '{name}' (lower-case letters, digits and _)"));
            }
            let finite = r.offset.iter().chain(&r.error_scale).chain(&r.sigma_sys).all(|v| v.is_finite());
            if !finite || r.error_scale.iter().any(|k| *k <= 0.0) || r.sigma_sys.iter().any(|s| *s < 0.0) {
                return Err(format!(
                    "release '{name}': offset, error_scale, sigma_sys must be finite with error_scale > 0 and sigma_sys >= 0"
                ));
            }
        }
        if !self.releases.contains_key(&self.default_release) {
            return Err(format!("inference.default_release '{}' is not among the releases", self.default_release));
        }
        Ok(())
    }
}

/// The labels a v2 model can integrate out when one is missing (reference_cn.py rule 12).
pub const MARGINALISABLE: [&str; 3] = ["logg", "c_fe", "n_fe"];

/// The C-N plane of a star (reference_cn.py rule 11): the flow's density on a [C/Fe] x [N/Fe] grid, summed over the
/// target, with the star's other labels.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Cn {
    /// [C/Fe] values of the plane (dex): the training range widened by a tenth on each side.
    pub c: Grid,
    /// [N/Fe] values of the plane (dex).
    pub n: Grid,
    /// Target values the plane is summed over, in the flow's units (Gyr; log10(M/Msun) for mass).
    pub target: Grid,
    /// CN_ATYPICAL where a star's level exceeds this (the `threshold_quantile` of the training stars' levels).
    pub threshold: f64,
    #[serde(default)]
    pub threshold_quantile: Option<f64>,
}

impl Cn {
    /// Flow rows of one star's plane: every (c, n, target) point, and the measured (c, n) at every target point.
    pub fn rows_per_star(&self) -> Result<usize, String> {
        let points = self.c.num.checked_mul(self.n.num).and_then(|cells| cells.checked_add(1));
        points.and_then(|points| bounded_rows(points, self.target.num)).ok_or_else(|| {
            format!(
                "{} x {} cells and the measured point at {} target points must be at most {MAX_ROWS_PER_STAR} flow rows",
                self.c.num, self.n.num, self.target.num
            )
        })
    }

    fn validate(&self) -> Result<(), String> {
        for (name, axis) in [("c", &self.c), ("n", &self.n), ("target", &self.target)] {
            axis.validate().map_err(|e| format!("cn.{name}: {e}"))?;
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("cn.threshold must be a level between 0 and 1, found {}", self.threshold));
        }
        self.rows_per_star().map(drop).map_err(|e| format!("cn: {e}"))
    }
}

/// The values a missing label is integrated over (its training range widened by a tenth on each side) and the density
/// threshold of the four known labels (the 5th percentile of the training stars' densities without that label).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MarginalAxis {
    #[serde(flatten)]
    pub axis: Grid,
    pub threshold: f64,
}

fn validate_marginal(marginal: &BTreeMap<String, MarginalAxis>, grid_points: usize) -> Result<(), String> {
    for (label, m) in marginal {
        if !MARGINALISABLE.contains(&label.as_str()) {
            return Err(format!("marginal: '{label}' cannot be marginalised (only {})", MARGINALISABLE.join(", ")));
        }
        m.axis.validate().map_err(|e| format!("marginal.{label}: {e}"))?;
        if !(m.threshold.is_finite() && m.threshold >= 0.0) {
            return Err(format!("marginal.{label}: threshold must be finite and >= 0"));
        }
        if bounded_rows(m.axis.num, grid_points).is_none() {
            return Err(format!(
                "marginal.{label}: {} values x {grid_points} grid points must be at most {MAX_ROWS_PER_STAR} flow rows",
                m.axis.num
            ));
        }
    }
    Ok(())
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

    fn validate(&self) -> Result<(), String> {
        if !(self.start.is_finite() && self.stop.is_finite() && self.stop > self.start && self.num >= 2) {
            return Err("needs finite start < stop and num >= 2".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Density {
    /// S of docs/METHOD.md sec. 8: samples seen in training.
    pub scale: f64,
    /// LOW_DENSITY below this.
    pub threshold: f64,
    #[serde(default)]
    pub threshold_quantile: Option<f64>,
    /// The training stars' density at percentiles 0, 1, ..., 100: what makes a star's density scale-free.
    #[serde(default)]
    pub training_percentiles: Option<Vec<f64>>,
}

impl Density {
    /// The percentage of training stars whose density is below `density` (0 to 100; linear between the stored
    /// percentiles, 0 below the lowest and 100 above the highest), or `None` without stored percentiles.
    pub fn percentile_of(&self, density: f64) -> Option<f64> {
        let p = self.training_percentiles.as_deref()?;
        if density.is_nan() {
            return None;
        }
        // The first percentile at or above the density; ties (equal stored values) resolve to the lowest.
        let i = p.partition_point(|&v| v < density);
        Some(match i {
            0 => 0.0,
            i if i == p.len() => 100.0,
            i => {
                let (lo, hi) = (p[i - 1], p[i]);
                (i - 1) as f64 + (density - lo) / (hi - lo)
            }
        })
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.scale.is_finite() && self.scale > 0.0 && self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err("density scale must be finite and > 0, threshold finite and >= 0".into());
        }
        if let Some(p) = &self.training_percentiles {
            let ordered = p.windows(2).all(|w| w[0] <= w[1]);
            if p.len() != 101 || !ordered || p.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err("density.training_percentiles must be 101 finite, non-negative, non-decreasing values \
                            (percentiles 0 to 100)"
                    .into());
            }
        }
        Ok(())
    }
}

/// The manifest's version alone: read before the rest, so that an older or newer manifest is refused for its version
/// rather than for the first key its format lacks.
#[derive(Deserialize)]
struct Version {
    format_version: u32,
}

fn check_version(format_version: u32) -> Result<(), String> {
    if format_version != FORMAT_VERSION {
        return Err(format!("unsupported format_version {format_version} (this starflow reads version {FORMAT_VERSION})"));
    }
    Ok(())
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let invalid = |e: serde_json::Error| format!("{}: invalid manifest: {e}", path.display());
        let version: Version = serde_json::from_str(&text).map_err(invalid)?;
        check_version(version.format_version).map_err(|e| format!("{}: {e}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(invalid)?;
        manifest.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(manifest)
    }

    pub fn validate(&self) -> Result<(), String> {
        check_version(self.format_version)?;
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
        g.validate().map_err(|e| format!("target grid {e}"))?;
        if self.target.transform == Transform::Log10 && g.start < 0.0 {
            return Err("a log10 target needs a grid of non-negative values".into());
        }
        rows_per_star(self.default_draws, g.num).map_err(|e| format!("default_draws and grid: {e}"))?;
        self.density.validate()?;
        match (self.method, &self.inference) {
            (Method::Paper, None) => {}
            (Method::Paper, Some(_)) => return Err("method 'paper' takes no 'inference' section (it is method v2's)".into()),
            (Method::V2, None) => return Err("method 'v2' needs an 'inference' section (sigma_train and releases)".into()),
            (Method::V2, Some(inference)) => inference.validate()?,
        }
        if self.method == Method::Paper && (self.cn.is_some() || self.marginal.is_some()) {
            return Err("method 'paper' takes no 'cn' or 'marginal' section (they are method v2's)".into());
        }
        if let Some(cn) = &self.cn {
            cn.validate()?;
        }
        match &self.marginal {
            Some(marginal) => validate_marginal(marginal, g.num),
            None => Ok(()),
        }
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
            "format_version": 2, "name": "age", "version": "1.0.0", "method": "paper",
            "onnx": {"file": "model.onnx", "input": "x", "output": "log_prob"},
            "labels": [dim("teff", 0.0), dim("logg", 0.0), dim("fe_h", 0.0), dim("c_fe", 0.0), dim("n_fe", 0.0)],
            "target": {"name": "age", "unit": "Gyr", "mean": 7.0, "std": 1.0, "train_min": 0.0, "train_max": 14.0,
                       "transform": "linear", "grid": {"start": 0.0, "stop": 14.0, "num": 250}},
            "default_draws": 50,
            "density": {"scale": 1.0e9, "threshold": 3.0e9, "threshold_quantile": 0.05}
        })
    }

    /// The example as a method v2 manifest with two releases.
    fn v2_json() -> serde_json::Value {
        let release = |offset: f64| {
            serde_json::json!({"offset": [offset, 0.0, 0.0, 0.0, 0.0], "error_scale": [1.0, 1.0, 1.0, 1.0, 1.0],
                               "sigma_sys": [0.0, 0.03, 0.0, 0.0, 0.0], "measured": [true, true, true, true, true],
                               "n_stars": 800, "source": "test"})
        };
        let mut v = example_json();
        v["method"] = "v2".into();
        v["inference"] = serde_json::json!({"sigma_train": [50.0, 0.05, 0.02, 0.03, 0.04], "default_release": "dr19",
                                            "releases": {"dr17": release(0.0), "dr19": release(10.0)}});
        v
    }

    fn check_from(mut v: serde_json::Value, edit: impl FnOnce(&mut serde_json::Value)) -> Result<Manifest, String> {
        edit(&mut v);
        let m: Manifest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        m.validate().map(|_| m)
    }

    fn check(edit: impl FnOnce(&mut serde_json::Value)) -> Result<(), String> {
        check_from(example_json(), edit).map(|_| ())
    }

    fn check_v2(edit: impl FnOnce(&mut serde_json::Value)) -> Result<(), String> {
        check_from(v2_json(), edit).map(|_| ())
    }

    #[test]
    fn accepts_a_complete_manifest_and_refuses_bad_constants() {
        check(|_| {}).unwrap();
        assert!(check(|v| v["format_version"] = 1.into()).unwrap_err().contains("unsupported format_version 1"));
        assert!(check(|v| v["labels"][0]["std"] = 0.0.into()).unwrap_err().contains("'teff'"));
        assert!(check(|v| v["labels"][1]["name"] = "logg_seis".into()).unwrap_err().contains("labels must be"));
        assert!(check(|v| v["target"]["grid"]["num"] = 1.into()).unwrap_err().contains("grid"));
        assert!(check(|v| v["density"]["scale"] = (-1.0).into()).unwrap_err().contains("density"));
        assert!(check(|v| v["default_draws"] = 0.into()).unwrap_err().contains("between 1 and"));
        // 10^12 grid points would be allocated (and 50 x 10^12 flow rows per star): refused, not an out-of-memory abort.
        assert!(check(|v| v["target"]["grid"]["num"] = 1_000_000_000_000u64.into()).unwrap_err().contains("draws x grid points"));
        assert!(check(|v| v.as_object_mut().unwrap().remove("density").map(|_| ()).unwrap()).unwrap_err().contains("density"));
        assert!(check(|v| v.as_object_mut().unwrap().remove("method").map(|_| ()).unwrap()).unwrap_err().contains("missing field `method`"));
        assert!(check(|v| v["method"] = "v3".into()).unwrap_err().contains("unknown variant `v3`"));
    }

    #[test]
    fn v2_needs_its_inference_section_and_the_paper_method_none() {
        let m = check_from(v2_json(), |_| {}).unwrap();
        let inference = m.inference.as_ref().unwrap();
        assert_eq!(inference.release("").unwrap().0, "dr19", "empty: the default release");
        assert_eq!(inference.release("dr17").unwrap().1.offset[0], 0.0);
        assert_eq!(inference.release("dr14").unwrap_err(), "unknown label release 'dr14' (this model knows dr17, dr19)");
        assert!(check_v2(|v| v["method"] = "paper".into()).unwrap_err().contains("method 'paper' takes no 'inference'"));
        assert!(check(|v| v["method"] = "v2".into()).unwrap_err().contains("method 'v2' needs an 'inference' section"));
        let refused = [
            (check_v2(|v| v["inference"]["sigma_train"][1] = 0.0.into()), "sigma_train must be 5 finite values > 0"),
            (check_v2(|v| v["inference"]["sigma_train"] = serde_json::json!([1.0, 1.0])), "invalid length 2, expected an array of length 5"),
            (check_v2(|v| v["inference"]["default_release"] = "dr16".into()), "default_release 'dr16' is not among the releases"),
            (check_v2(|v| v["inference"]["releases"]["dr17"]["error_scale"][2] = 0.0.into()), "release 'dr17'"),
            (check_v2(|v| v["inference"]["releases"]["dr19"]["sigma_sys"][0] = (-0.1).into()), "release 'dr19'"),
            (check_v2(|v| v["inference"]["releases"] = serde_json::json!({})), "inference.releases is empty"),
            (check_v2(|v| v["inference"]["releases"]["DR14"] = v["inference"]["releases"]["dr17"].clone()), "invalid release name 'DR14'"),
            (check_v2(|v| v["inference"]["releases"]["dr17"].as_object_mut().unwrap().remove("measured").map(|_| ()).unwrap()), "missing field `measured`"),
        ];
        for (i, (result, message)) in refused.into_iter().enumerate() {
            let err = result.unwrap_err();
            assert!(err.contains(message), "case {i}: {err}");
        }
    }

    #[test]
    fn v2_may_carry_the_cn_plane_and_marginal_axes_and_the_paper_method_not() {
        let with_sections = |v: &mut serde_json::Value| {
            v["cn"] = serde_json::json!({"c": {"start": -0.6, "stop": 0.6, "num": 20}, "n": {"start": -0.4, "stop": 0.9, "num": 20},
                                         "target": {"start": -1.4, "stop": 15.4, "num": 10}, "threshold": 0.975,
                                         "threshold_quantile": 0.975});
            v["marginal"] = serde_json::json!({"logg": {"start": 0.15, "stop": 4.35, "num": 24, "threshold": 1e5},
                                               "n_fe": {"start": -0.41, "stop": 0.91, "num": 24, "threshold": 1e5}});
            // informational (the model report's)
            v["density"]["training_percentiles"] = serde_json::json!((0..=100).map(f64::from).collect::<Vec<_>>());
        };
        let m = check_from(v2_json(), with_sections).unwrap();
        assert_eq!(m.cn.as_ref().unwrap().rows_per_star(), Ok(4010));
        let marginal = m.marginal.as_ref().unwrap();
        assert_eq!((marginal["logg"].axis.num, marginal["logg"].threshold), (24, 1e5));
        assert!(check_from(v2_json(), |_| {}).unwrap().cn.is_none(), "both sections are optional");
        let refused = [
            (check(with_sections), "method 'paper' takes no 'cn' or 'marginal' section"),
            (check_v2(|v| { with_sections(v); v["cn"]["threshold"] = 1.5.into() }), "cn.threshold must be a level between 0 and 1"),
            (check_v2(|v| { with_sections(v); v["cn"]["n"]["num"] = 1.into() }), "cn.n: needs finite start < stop and num >= 2"),
            (check_v2(|v| { with_sections(v); v["cn"]["c"]["num"] = 100_000.into() }), "cn: 100000 x 20 cells and the measured point at 10 target points must be at most"),
            (check_v2(|v| { with_sections(v); v["marginal"]["teff"] = v["marginal"]["logg"].clone() }), "'teff' cannot be marginalised"),
            (check_v2(|v| { with_sections(v); v["marginal"]["logg"]["stop"] = 0.0.into() }), "marginal.logg: needs finite start < stop"),
            (check_v2(|v| { with_sections(v); v["marginal"]["n_fe"]["threshold"] = (-1.0).into() }), "marginal.n_fe: threshold must be finite"),
            (check_v2(|v| { with_sections(v); v["cn"].as_object_mut().unwrap().remove("threshold"); }), "missing field `threshold`"),
        ];
        for (i, (result, message)) in refused.into_iter().enumerate() {
            let err = result.unwrap_err();
            assert!(err.contains(message), "case {i}: {err}");
        }
    }

    #[test]
    fn density_percentiles_interpolate_and_are_checked() {
        let mut d = Density { scale: 1.0, threshold: 5.0, threshold_quantile: None, training_percentiles: None };
        assert_eq!(d.percentile_of(3.0), None, "no percentiles stored: no percentile");
        // densities 10 x p, with a tie at percentiles 50-52
        let mut p: Vec<f64> = (0..=100).map(|i| 10.0 * f64::from(i)).collect();
        p[51] = 500.0;
        p[52] = 500.0;
        d.training_percentiles = Some(p);
        d.validate().unwrap();
        for (density, percent) in [(-1.0, 0.0), (0.0, 0.0), (25.0, 2.5), (55.0, 5.5), (500.0, 50.0), (510.0, 52.0 + 1.0 / 3.0), (1000.0, 100.0), (1e9, 100.0)] {
            let got = d.percentile_of(density).unwrap();
            assert!((got - percent).abs() < 1e-12, "{density}: {got} vs {percent}");
        }
        assert_eq!(d.percentile_of(f64::NAN), None);
        for bad in [vec![1.0; 100], (0..=100).rev().map(f64::from).collect(), vec![f64::NAN; 101]] {
            d.training_percentiles = Some(bad);
            assert!(d.validate().unwrap_err().contains("training_percentiles"));
        }
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
