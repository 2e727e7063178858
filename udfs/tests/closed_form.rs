//! The posterior pipeline on a flow with a closed-form density (tests/data/gaussian: a 6-D standard normal in
//! standardized space, exported as ONNX and run through ONNX Runtime). Its exact answers:
//! - the age posterior is the Gaussian N(mu, 1 Gyr) on the grid, for any draws (the label factor of each draw cancels
//!   in the per-draw normalisation); mu is grid point 100;
//! - the maximum is at mu; the 1-sigma bounds are the 0.5 -/+ 0.34 quantiles, mu -/+ 0.994458 Gyr, up to the CDF's
//!   discretisation (half a grid step, 0.0281 Gyr);
//! - the training density is S (2 pi)^(-5/2) mean_d exp(-|z_d|^2 / 2), z_d the standardized label draws.

use std::path::PathBuf;

use starflow_udfs::inference::{Options, estimate_batch, estimate_with_draws};
use starflow_udfs::posterior::bits;
use starflow_udfs::registry::InferencePool;
use starflow_udfs::{Device, ModelRegistry};

fn model() -> std::sync::Arc<starflow_udfs::model::Model> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    ModelRegistry::load(&dir, Device::Cpu).unwrap().require("age").unwrap()
}

const MEANS: [f64; 5] = [4700.0, 2.5, 0.0, 0.0, 0.2];
const STDS: [f64; 5] = [300.0, 0.5, 0.2, 0.1, 0.1];

#[test]
fn posterior_maximum_bounds_and_density_match_the_closed_form() {
    let (model, pool) = (model(), InferencePool::new(2));
    let mu = 100.0 * 14.0 / 249.0;
    let errors: [f64; 5] = std::array::from_fn(|i| 0.01 * STDS[i]);
    let options = Options { draws: 50, seed: 1, chunk_rows: 4096 };
    let est = estimate_batch(&model, &[Some((MEANS, errors))], &options, true, &pool).unwrap().remove(0);

    let grid = &model.weights.grid;
    let gauss: Vec<f64> = grid.iter().map(|t| (-0.5 * (t - mu).powi(2)).exp()).collect();
    let norm: f64 = gauss.iter().sum();
    let posterior = est.posterior.clone().unwrap();
    // float32 log-densities of magnitude < 25 carry ~2e-6 absolute error, i.e. ~2e-6 relative in p.
    for (g, (p, q)) in posterior.iter().zip(&gauss).enumerate() {
        assert!((p - q / norm).abs() <= 1e-5 * (q / norm) + 1e-12, "grid point {g}: {p} vs {}", q / norm);
    }
    assert_eq!(est.value, Some(grid[100]));
    let half_step = 0.5 * 14.0 / 249.0;
    assert!((est.e_p.unwrap() - 0.994458).abs() < half_step, "e_p {:?}", est.e_p);
    assert!((est.e_n.unwrap() + 0.994458).abs() < half_step, "e_n {:?}", est.e_n);
    // |z| ~ 0.01 per label: exp(-|z|^2/2) = 1 - O(2.5e-4); the grid covers mu -/+ 5.6 sigma.
    let expected = 1.0e9 * (2.0 * std::f64::consts::PI).powf(-2.5);
    let density = est.training_density.unwrap();
    assert!((density / expected - 1.0).abs() < 1e-3, "density {density} vs {expected}");
    assert_eq!(est.bitmask, 0);
}

#[test]
fn density_follows_the_label_offset_exactly_with_given_draws() {
    // All 3 draws at +2 sigma in teff: density = S (2 pi)^(-5/2) e^(-2) * (Riemann sum of N(t; mu, 1) = 1).
    let model = model();
    let mut draw = MEANS;
    draw[0] += 2.0 * STDS[0];
    let draws: Vec<f64> = (0..3).flat_map(|_| draw).collect();
    let est = estimate_with_draws(&model, &draws, 3, false).unwrap().remove(0);
    let expected = 1.0e9 * (2.0 * std::f64::consts::PI).powf(-2.5) * (-2.0f64).exp();
    assert!((est.training_density.unwrap() / expected - 1.0).abs() < 1e-5, "{:?} vs {expected}", est.training_density);
}

#[test]
fn far_stars_are_flagged_and_bad_inputs_give_nulls() {
    let (model, pool) = (model(), InferencePool::new(2));
    let options = Options { draws: 10, seed: 1, chunk_rows: 100 };
    let small: [f64; 5] = std::array::from_fn(|i| 0.01 * STDS[i]);
    let mut far = MEANS;
    far[0] = 3000.0; // below train_min 3500 and 5.7 sigma from the mean: density ~ 1e-7 of the peak
    let mut bad_error = small;
    bad_error[2] = 0.0;
    let mut nan_label = MEANS;
    nan_label[3] = f64::NAN;
    let stars = [Some((far, small)), None, Some((MEANS, bad_error)), Some((nan_label, small)), Some((MEANS, small))];
    let est = estimate_batch(&model, &stars, &options, false, &pool).unwrap();
    assert_eq!(est[0].bitmask, bits::OUT_OF_RANGE | bits::LOW_DENSITY);
    assert_eq!(est[0].value, Some(model.weights.grid[100]), "the posterior itself does not depend on the labels");
    for e in &est[1..4] {
        assert_eq!((e.bitmask, e.value, e.training_density), (bits::BAD_INPUT, None, None));
    }
    assert_eq!(est[4].bitmask, 0);
    assert_eq!(model.stars_evaluated(), 2, "bad rows are never evaluated");
}

#[test]
fn results_do_not_depend_on_chunking_batch_composition_or_threads() {
    let model = model();
    let (pool, one_thread) = (InferencePool::new(3), InferencePool::new(1));
    let stars: Vec<_> = (0..7)
        .map(|i| {
            let x: [f64; 5] = std::array::from_fn(|j| MEANS[j] + (i as f64 - 3.0) * 0.3 * STDS[j]);
            Some((x, STDS.map(|s| 0.5 * s)))
        })
        .collect();
    let options = |chunk_rows, seed| Options { draws: 20, seed, chunk_rows };
    let whole = estimate_batch(&model, &stars, &options(1_000_000, 9), true, &one_thread).unwrap();
    let tiny_chunks = estimate_batch(&model, &stars, &options(1, 9), true, &pool).unwrap();
    let one_by_one: Vec<_> = stars
        .iter()
        .map(|s| estimate_batch(&model, std::slice::from_ref(s), &options(977, 9), true, &pool).unwrap().remove(0))
        .collect();
    assert_eq!(whole, tiny_chunks);
    assert_eq!(whole, one_by_one);
    let other_seed = estimate_batch(&model, &stars, &options(1_000_000, 10), true, &pool).unwrap();
    assert_ne!(whole[0].training_density, other_seed[0].training_density, "the seed matters");
}
