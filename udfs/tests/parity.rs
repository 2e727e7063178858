//! Every shipped model (each directory of models/ with fixtures, both methods) against the training pipeline's fixtures
//! (models/<name>/fixtures, written by models/train): ONNX Runtime's log_prob against PyTorch's (float64), and the
//! engine's posteriors and summaries against the Python reference implementation run on the same label rows (the
//! stored draws; under method v2 a star within the training noise is one row, its labels moved onto the training
//! release). Method v2 models with a C-N plane and missing-label axes (manifest `cn`, `marginal`) also match the
//! reference's C-N levels and CN_ATYPICAL bits of every fixture star, its C-N planes (`cn_planes`) and its stars with
//! one label hidden (`marginalised`: reference_cn.py rules 11 and 12).
//!
//! Tolerances: ORT evaluates the flow in float32 (24-bit mantissa, 6e-8 relative per operation) through 6 coupling
//! layers; against PyTorch in float64 the measured error is ~4e-6 relative (1.6e-3 absolute on the far tails, where
//! log_prob is ~ -400), and we allow 2e-4 + 1e-5 |log_prob|. Where posteriors live (log_prob within ~20 of the peak) the
//! error is ~2e-4 at most. A log_prob error d changes p by a factor e^d, so posterior values may move by
//! ~2d relative (4e-4, allowed 1e-3 of the peak), the CDF by as much, and the interval bounds, the median and the
//! percentiles by that mass divided by the local density (allowed a quarter of a grid step); densities by 1e-3 relative.
//!
//! The C-N level is a sum of cell probabilities, each within ~2d relative as above: while the same cells count, the
//! level moves by at most ~1e-3 (allowed). A cell whose density is within that relative distance of the measured
//! point's may count in one computation and not the other, moving the level by its whole probability: the allowed
//! difference adds the probability of such cells (found in the engine's own plane, with a margin of 2e-3). Likewise
//! CN_ATYPICAL may legitimately differ where the reference level lies within that allowance of the threshold: such
//! stars are compared on every other bit, counted and printed, and at most a tenth of the stars may be such.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use starflow_udfs::inference::{Options, estimate_batch, estimate_with_draws, plane_of};
use starflow_udfs::joint::{CnPlane, Plane};
use starflow_udfs::manifest::Method;
use starflow_udfs::model::Model;
use starflow_udfs::posterior::{Estimate, bits};
use starflow_udfs::registry::InferencePool;
use starflow_udfs::{Device, ModelRegistry};

/// The models shipped in models/: both methods, both targets.
const SHIPPED: [&str; 4] = ["age", "age_paper", "mass", "mass_paper"];

/// Allowed |ORT - PyTorch| for a log-density of magnitude |lp|.
fn log_prob_tolerance(lp: f64) -> f64 {
    2e-4 + 1e-5 * lp.abs()
}

/// Relative error of a cell's (or the measured point's) probability in the C-N plane: 2d for a log-density error d of
/// 2e-4, doubled (module docs).
const CELL_RELATIVE: f64 = 2e-3;

/// Every model of models/, each with its fixtures directory.
fn models() -> Vec<(std::sync::Arc<Model>, PathBuf)> {
    let registry = ModelRegistry::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"), Device::Cpu).unwrap();
    let names: Vec<&str> = registry.models().map(|m| m.name()).collect();
    assert_eq!(names, SHIPPED, "the shipped models");
    registry.models().map(|m| (m.clone(), m.dir.join("fixtures"))).collect()
}

#[derive(Deserialize)]
struct LogProbFixture {
    rows: Vec<[f64; 6]>,
    log_prob: Vec<f64>,
}

#[derive(Deserialize)]
struct PosteriorFixture {
    /// The Monte-Carlo draws of a drawn star.
    draws: usize,
    stars: Vec<StarFixture>,
    /// Models with a C-N plane: the planes of a few stars.
    #[serde(default)]
    cn_planes: Vec<PlaneFixture>,
    /// Models with missing-label axes: stars with one label hidden.
    #[serde(default)]
    marginalised: Vec<MarginalisedFixture>,
}

/// What the reference computed for a star.
#[derive(Deserialize)]
struct Outputs {
    posterior: Option<Vec<f64>>,
    value: Option<f64>,
    e_p: Option<f64>,
    e_n: Option<f64>,
    #[serde(default)]
    median: Option<f64>,
    #[serde(default)]
    p16: Option<f64>,
    #[serde(default)]
    p84: Option<f64>,
    training_density: Option<f64>,
    bitmask: i64,
}

#[derive(Deserialize)]
struct StarFixture {
    id: String,
    labels: [f64; 5],
    errors: [f64; 5],
    /// Method v2: the release the labels were read in (absent: the model's default).
    #[serde(default)]
    release: Option<String>,
    /// The label rows the reference evaluated (raw units): `draws` of them, or one under v2 within the training noise.
    draws: Vec<[f64; 5]>,
    #[serde(flatten)]
    outputs: Outputs,
    /// Models with a C-N plane: the level of the measured (C, N) (rule 11).
    #[serde(default)]
    cn_level: Option<f64>,
}

#[derive(Deserialize)]
struct PlaneFixture {
    id: String,
    release: String,
    labels: [f64; 5],
    errors: [f64; 5],
    /// `c.num x n.num` values, c slowest.
    posterior: Option<Vec<f64>>,
    level: Option<f64>,
}

#[derive(Deserialize)]
struct MarginalisedFixture {
    id: String,
    release: String,
    /// The hidden label is null.
    labels: [Option<f64>; 5],
    errors: [f64; 5],
    hidden: String,
    #[serde(flatten)]
    outputs: Outputs,
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_model_log_prob_matches_pytorch() {
    for (model, fixtures) in models() {
        let name = model.name();
        let fx: LogProbFixture = read(&fixtures.join("log_prob.json"));
        assert!(fx.rows.len() >= 100, "{name}: a few hundred rows");
        let rows: Vec<f32> = fx.rows.iter().flatten().map(|v| *v as f32).collect();
        let ours: Vec<f32> = model
            .with_session(|s| {
                let input = ort::value::TensorRef::from_array_view(([fx.rows.len(), 6usize], rows.as_slice())).map_err(|e| e.to_string())?;
                let out = s.run(ort::inputs!["x" => input]).map_err(|e| e.to_string())?;
                Ok(out["log_prob"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?.1.to_vec())
            })
            .unwrap();
        let max_diff = ours.iter().zip(&fx.log_prob).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        eprintln!("{name}: log_prob max |ORT - PyTorch| = {max_diff:.3e} over {} rows", fx.rows.len());
        for (i, (a, b)) in ours.iter().zip(&fx.log_prob).enumerate() {
            assert!((*a as f64 - b).abs() <= log_prob_tolerance(*b), "{name}: row {i}: ORT {a} vs PyTorch {b}");
        }
    }
}

/// Largest differences seen over a model's stars, in grid steps (values) and relative (densities), for the log.
#[derive(Default)]
struct Worst {
    posterior: f64,
    bounds: f64,
    /// None until a fixture star carries its median and percentiles (the paper's fixtures may not).
    percentiles: Option<f64>,
    density: f64,
}

impl Worst {
    fn describe(&self) -> String {
        format!(
            "posterior {:.2e} of the peak, bounds {:.3} steps, median/percentiles {} steps, density {:.2e} relative",
            self.posterior,
            self.bounds,
            self.percentiles.map_or("(not in the fixtures)".to_string(), |d| format!("{d:.3}")),
            self.density
        )
    }
}

/// The engine's estimate `est` of a star against the reference's `fx`, on everything but the bits in `skip_bits`.
fn compare(model: &Model, what: &str, est: &Estimate, fx: &Outputs, skip_bits: i64, worst: &mut Worst) {
    let step = model.weights.grid[1] - model.weights.grid[0];
    let v2 = model.manifest.method == Method::V2;
    match (&est.posterior, &fx.posterior) {
        (Some(ours), Some(theirs)) => {
            let peak = theirs.iter().cloned().fold(0.0, f64::max);
            let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            worst.posterior = worst.posterior.max(diff / peak);
            assert!(diff <= 1e-3 * peak, "{what}: posterior differs by {diff} (peak {peak})");
            let (v, ev) = (est.value.unwrap(), fx.value.unwrap());
            if v != ev {
                // Only a near-tie of the two maxima may pick another grid point.
                let at = |x: f64| theirs[((x - model.weights.grid[0]) / step).round() as usize];
                assert!((at(v) - at(ev)).abs() <= 1e-3 * peak, "{what}: maximum at {v}, reference {ev}");
            }
            let mut pairs = vec![
                (v + est.e_n.unwrap(), ev + fx.e_n.unwrap(), "lower bound"),
                (v + est.e_p.unwrap(), ev + fx.e_p.unwrap(), "upper bound"),
            ];
            let percentiles = [(est.median, fx.median, "median"), (est.p16, fx.p16, "p16"), (est.p84, fx.p84, "p84")];
            for (ours, theirs, name) in percentiles {
                match theirs {
                    Some(theirs) => pairs.push((ours.unwrap(), theirs, name)),
                    None => assert!(!v2, "{what}: a v2 fixture star carries its {name}"),
                }
            }
            for (ours, theirs, name) in pairs {
                let d = (ours - theirs).abs() / step;
                if name.ends_with("bound") {
                    worst.bounds = worst.bounds.max(d);
                } else {
                    worst.percentiles = Some(worst.percentiles.unwrap_or(0.0).max(d));
                }
                assert!(d <= 0.25, "{what}: {name} {ours} vs {theirs}");
            }
        }
        (None, None) => {}
        (ours, theirs) => panic!("{what}: estimate presence differs: ours {:?}, reference {:?}", ours.is_some(), theirs.is_some()),
    }
    match (est.training_density, fx.training_density) {
        (Some(a), Some(b)) => {
            let rel = (a - b).abs() / b.abs().max(1e-300);
            worst.density = worst.density.max(rel);
            assert!(rel <= 1e-3, "{what}: density {a} vs {b}");
        }
        (a, b) => assert_eq!(a, b, "{what}: density"),
    }
    assert_eq!(est.bitmask & !skip_bits, fx.bitmask & !skip_bits, "{what}: bitmask");
}

/// How far the engine's level may be from the reference's (module docs): 1e-3 for the cells' own errors, plus the
/// probability of the cells as dense as the measured point within [`CELL_RELATIVE`].
fn level_allowance(plane: &Plane) -> f64 {
    let (posterior, measured) = (plane.posterior.as_ref().unwrap(), plane.measured.unwrap());
    1e-3 + posterior.iter().filter(|p| (*p - measured).abs() <= CELL_RELATIVE * measured).sum::<f64>()
}

/// C-N levels compared, for the log.
#[derive(Default)]
struct Levels {
    compared: usize,
    worst: f64,
    /// Stars whose reference level is within the allowance of the threshold: CN_ATYPICAL not compared.
    near_threshold: Vec<String>,
    flagged: usize,
}

/// The engine's plane of a star (labels read in `release`) and the allowance on its level.
fn engine_plane(model: &Model, cn: &CnPlane, release: &str, labels: &[f64; 5], errors: &[f64; 5]) -> (Plane, f64) {
    let center = model.draw_planner(release, model.manifest.default_draws).unwrap()(labels, errors).center;
    let plane = plane_of(model, cn, &center, true).unwrap();
    let allowance = level_allowance(&plane);
    (plane, allowance)
}

fn posterior_parity(model: &Model, fixtures: &Path) {
    let name = model.name();
    let fx: PosteriorFixture = read(&fixtures.join("posteriors.json"));
    let v2 = model.manifest.method == Method::V2;
    let (mut worst, mut levels, mut one_row) = (Worst::default(), Levels::default(), 0);
    for star in &fx.stars {
        let what = format!("{name} {}", star.id);
        let release = star.release.as_deref().unwrap_or("");
        // The engine's plan for the star: the same number of rows, and a star of one row is the plan's center itself.
        let plan = model.draw_planner(release, fx.draws).unwrap()(&star.labels, &star.errors);
        assert_eq!(plan.draws, star.draws.len(), "{what}: label rows");
        if plan.draws == 1 {
            assert!(v2, "{what}: only method v2 evaluates a star once");
            assert_eq!(star.draws[0], plan.center, "{what}: the one row is the labels on the training scale");
            one_row += 1;
        }
        let draws: Vec<f64> = star.draws.iter().flatten().copied().collect();
        let mut est = estimate_with_draws(model, &draws, true).unwrap();
        if model.out_of_range(&plan.center) {
            est.bitmask |= bits::OUT_OF_RANGE;
        }
        let mut skip_bits = 0;
        match (&model.cn, star.cn_level) {
            (Some(cn), Some(theirs)) => {
                let (plane, allowance) = engine_plane(model, cn, release, &star.labels, &star.errors);
                let ours = plane.level.unwrap();
                if ours > cn.threshold {
                    est.bitmask |= bits::CN_ATYPICAL;
                }
                levels.compared += 1;
                levels.worst = levels.worst.max((ours - theirs).abs());
                levels.flagged += usize::from(star.outputs.bitmask & bits::CN_ATYPICAL != 0);
                assert!((ours - theirs).abs() <= allowance, "{what}: C-N level {ours} vs {theirs} (allowed {allowance:.2e})");
                if (theirs - cn.threshold).abs() <= allowance {
                    skip_bits = bits::CN_ATYPICAL;
                    levels.near_threshold.push(format!("{} (level {theirs:.5}, allowed {allowance:.1e})", star.id));
                }
            }
            (None, None) => {}
            (ours, theirs) => panic!("{what}: C-N plane in the model {}, level in the fixture {theirs:?}", ours.is_some()),
        }
        compare(model, &what, &est, &star.outputs, skip_bits, &mut worst);
    }
    eprintln!("{name} ({}): {} reference stars matched ({one_row} of one row); worst: {}", model.manifest.method.as_str(), fx.stars.len(), worst.describe());
    assert!(fx.stars.len() >= 40, "{name}: ~50 stars expected, got {}", fx.stars.len());
    if v2 {
        assert!(one_row > 0 && one_row < fx.stars.len(), "{name}: the fixtures hold one-row and drawn stars");
    }
    if model.cn.is_some() {
        eprintln!(
            "{name}: C-N levels of {} stars ({} flagged CN_ATYPICAL), worst |engine - reference| {:.2e}; CN_ATYPICAL not \
             compared for {} within the allowance of the threshold {:?}",
            levels.compared,
            levels.flagged,
            levels.worst,
            levels.near_threshold.len(),
            levels.near_threshold
        );
        assert!(levels.flagged > 0, "{name}: the fixtures hold CN_ATYPICAL stars");
        assert!(levels.near_threshold.len() * 10 <= levels.compared, "{name}: too many levels at the threshold");
    }
}

/// The C-N planes of the fixtures: posterior over the cells and level.
fn plane_parity(model: &Model, fixtures: &Path) {
    let name = model.name();
    let fx: PosteriorFixture = read(&fixtures.join("posteriors.json"));
    let Some(cn) = &model.cn else {
        assert!(fx.cn_planes.is_empty(), "{name}: C-N planes in the fixtures of a model without one");
        return;
    };
    assert!(!fx.cn_planes.is_empty(), "{name}: a model with a C-N plane has fixture planes");
    let (mut worst_cell, mut worst_level) = (0.0f64, 0.0f64);
    for p in &fx.cn_planes {
        let what = format!("{name} {} plane", p.id);
        let (plane, allowance) = engine_plane(model, cn, &p.release, &p.labels, &p.errors);
        let (ours, theirs) = (plane.posterior.as_ref().unwrap(), p.posterior.as_ref().unwrap());
        assert_eq!(ours.len(), cn.c.len() * cn.n.len(), "{what}: cells");
        assert_eq!(ours.len(), theirs.len(), "{what}: cells");
        let peak = theirs.iter().cloned().fold(0.0, f64::max);
        let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        worst_cell = worst_cell.max(diff / peak);
        assert!(diff <= 1e-3 * peak, "{what}: posterior differs by {diff} (peak {peak})");
        let (ours, theirs) = (plane.level.unwrap(), p.level.unwrap());
        worst_level = worst_level.max((ours - theirs).abs());
        assert!((ours - theirs).abs() <= allowance, "{what}: level {ours} vs {theirs} (allowed {allowance:.2e})");
    }
    eprintln!(
        "{name}: {} C-N planes matched; worst cell {worst_cell:.2e} of the peak, level {worst_level:.2e}",
        fx.cn_planes.len()
    );
}

/// The stars with one label hidden, through `estimate_batch` as SQL runs them (the label null, its error given).
fn marginalised_parity(model: &Model, fixtures: &Path) {
    let name = model.name();
    let fx: PosteriorFixture = read(&fixtures.join("posteriors.json"));
    if model.marginal.iter().all(Option::is_none) {
        assert!(fx.marginalised.is_empty(), "{name}: marginalised stars in the fixtures of a model without axes");
        return;
    }
    let (mut worst, mut hidden) = (Worst::default(), std::collections::BTreeSet::new());
    let pool = InferencePool::new(1);
    for star in &fx.marginalised {
        let what = format!("{name} {} without {}", star.id, star.hidden);
        let labels = star.labels.map(|v| v.unwrap_or(f64::NAN));
        let missing: Vec<usize> = (0..5).filter(|&i| star.labels[i].is_none()).collect();
        assert_eq!(missing.len(), 1, "{what}: one label hidden");
        assert_eq!(starflow_udfs::manifest::LABELS[missing[0]], star.hidden, "{what}: the hidden label is null");
        // The plane is not evaluated for a missing label, so the flag setting does not matter: both ways.
        for cn_flag in [true, false] {
            let opts = Options { draws: fx.draws, seed: 1, chunk_rows: 1 << 20, label_release: star.release.clone(), cn_flag };
            let est = estimate_batch(model, &[(labels, star.errors)], &opts, true, &pool).unwrap().remove(0);
            assert_eq!(est.cn_level, None, "{what}: no C-N level");
            compare(model, &what, &est, &star.outputs, 0, &mut worst);
        }
        assert!(star.outputs.bitmask & bits::LABEL_MARGINALISED != 0, "{what}: LABEL_MARGINALISED");
        hidden.insert(star.hidden.clone());
    }
    eprintln!("{name}: {} stars with a hidden label ({hidden:?}) matched; worst: {}", fx.marginalised.len(), worst.describe());
    assert_eq!(hidden.len(), 3, "{name}: log g, [C/Fe] and [N/Fe] each hidden");
}

#[test]
fn every_model_posteriors_match_the_reference() {
    for (model, fixtures) in models() {
        posterior_parity(&model, &fixtures);
    }
}

#[test]
fn every_v2_model_cn_planes_match_the_reference() {
    for (model, fixtures) in models() {
        plane_parity(&model, &fixtures);
    }
}

#[test]
fn every_v2_model_marginalised_stars_match_the_reference() {
    for (model, fixtures) in models() {
        marginalised_parity(&model, &fixtures);
    }
}
