//! The shipped models against the training pipeline's fixtures (models/<name>/fixtures, written by models/train):
//! ONNX Runtime's log_prob against PyTorch's (float64), and the engine's posteriors and summaries against the Python
//! reference implementation run on the same draws.
//!
//! Tolerances: ORT evaluates the flow in float32 (24-bit mantissa, 6e-8 relative per operation) through 6 coupling
//! layers; against PyTorch in float64 the measured error is ~4e-6 relative (1.6e-3 absolute on the far tails, where
//! log_prob is ~ -400), and we allow 2e-4 + 1e-5 |log_prob|. Where posteriors live (log_prob within ~20 of the peak) the
//! error is ~2e-4 at most. A log_prob error d changes p by a factor e^d, so posterior values may move by
//! ~2d relative (4e-4, allowed 1e-3 of the peak), the CDF by as much, and the interval bounds by that mass divided by the
//! local density (allowed a quarter of a grid step); densities by 1e-3 relative.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use starflow_udfs::inference::estimate_with_draws;
use starflow_udfs::model::Model;
use starflow_udfs::{Device, ModelRegistry};

/// Allowed |ORT - PyTorch| for a log-density of magnitude |lp|.
fn log_prob_tolerance(lp: f64) -> f64 {
    2e-4 + 1e-5 * lp.abs()
}

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn load(name: &str) -> (std::sync::Arc<Model>, PathBuf) {
    let registry = ModelRegistry::load(&models_dir(), Device::Cpu).unwrap();
    let model = registry.require(name).unwrap();
    let fixtures = model.dir.join("fixtures");
    (model, fixtures)
}

#[derive(Deserialize)]
struct LogProbFixture {
    rows: Vec<[f64; 6]>,
    log_prob: Vec<f64>,
}

#[derive(Deserialize)]
struct PosteriorFixture {
    draws: usize,
    stars: Vec<StarFixture>,
}

#[derive(Deserialize)]
struct StarFixture {
    id: String,
    labels: [f64; 5],
    draws: Vec<[f64; 5]>,
    posterior: Option<Vec<f64>>,
    value: Option<f64>,
    e_p: Option<f64>,
    e_n: Option<f64>,
    training_density: Option<f64>,
    bitmask: i64,
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn log_prob_parity(name: &str) {
    let (model, fixtures) = load(name);
    let fx: LogProbFixture = read(&fixtures.join("log_prob.json"));
    assert!(fx.rows.len() >= 100, "a few hundred rows");
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

fn posterior_parity(name: &str) {
    let (model, fixtures) = load(name);
    let fx: PosteriorFixture = read(&fixtures.join("posteriors.json"));
    let step = model.weights.grid[1] - model.weights.grid[0];
    let mut checked = 0;
    for star in &fx.stars {
        assert_eq!(star.draws.len(), fx.draws, "{}", star.id);
        let draws: Vec<f64> = star.draws.iter().flatten().copied().collect();
        let mut est = estimate_with_draws(&model, &draws, fx.draws, true).unwrap().remove(0);
        if model.out_of_range(&star.labels) {
            est.bitmask |= starflow_udfs::posterior::bits::OUT_OF_RANGE;
        }
        let id = &star.id;
        match (&est.posterior, &star.posterior) {
            (Some(ours), Some(theirs)) => {
                let peak = theirs.iter().cloned().fold(0.0, f64::max);
                let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst <= 1e-3 * peak, "{id}: posterior differs by {worst} (peak {peak})");
                let (v, ev) = (est.value.unwrap(), star.value.unwrap());
                if v != ev {
                    // Only a near-tie of the two maxima may pick another grid point.
                    let at = |x: f64| theirs[((x - model.weights.grid[0]) / step).round() as usize];
                    assert!((at(v) - at(ev)).abs() <= 1e-3 * peak, "{id}: maximum at {v}, reference {ev}");
                }
                for (ours, theirs, what) in [(v + est.e_n.unwrap(), ev + star.e_n.unwrap(), "lower"), (v + est.e_p.unwrap(), ev + star.e_p.unwrap(), "upper")] {
                    assert!((ours - theirs).abs() <= 0.25 * step, "{id}: {what} bound {ours} vs {theirs}");
                }
            }
            (None, None) => {}
            (ours, theirs) => panic!("{id}: estimate presence differs: ours {:?}, reference {:?}", ours.is_some(), theirs.is_some()),
        }
        match (est.training_density, star.training_density) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-3 * b.abs().max(1e-300), "{id}: density {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{id}: density"),
        }
        assert_eq!(est.bitmask, star.bitmask, "{id}: bitmask");
        checked += 1;
    }
    eprintln!("{name}: {checked} reference posteriors matched");
    assert!(checked >= 40, "~50 stars expected, got {checked}");
}

#[test]
fn age_log_prob_matches_pytorch() {
    log_prob_parity("age");
}

#[test]
fn mass_log_prob_matches_pytorch() {
    log_prob_parity("mass");
}

#[test]
fn age_posteriors_match_the_reference() {
    posterior_parity("age");
}

#[test]
fn mass_posteriors_match_the_reference() {
    posterior_parity("mass");
}
