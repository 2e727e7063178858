//! The posterior pipeline on flows with a closed-form density (tests/data/make_gaussian_model.py, exported as ONNX and
//! run through ONNX Runtime).
//!
//! `age` (tests/data/gaussian, the paper's method): a 6-D standard normal in standardized space. Its exact answers:
//! - the age posterior is the Gaussian N(mu, 1 Gyr) on the grid, for any draws (the label factor of each draw cancels
//!   in the per-draw normalisation); mu is grid point 100;
//! - the maximum is at mu; the 1-sigma bounds are the 0.5 -/+ 0.34 quantiles, mu -/+ 0.994458 Gyr, up to the CDF's
//!   discretisation (half a grid step, 0.0281 Gyr);
//! - the training density is S (2 pi)^(-5/2) mean_d exp(-|z_d|^2 / 2), z_d the standardized label draws.
//!
//! `age_v2` (tests/data/gaussian_v2, method v2): the same normal but with corr(teff, age) = 0.8 in standardized units:
//! - a star of one row at standardized labels z has the posterior N(mu + 0.8 z_teff, 0.6 Gyr) and the density
//!   S (2 pi)^(-5/2) exp(-|z|^2 / 2);
//! - drawn with an excess s (standardized) in Teff, the joint weighting's posterior is, for given draws z_d,
//!   proportional to sum_d N(z_d, t) (computed here independently), and tends to N(mu + 0.8 z / (1 + s^2),
//!   sqrt(1 - 0.64 / (1 + s^2))) as the draws grow (the paper's weighting would stay centred on mu + 0.8 z);
//! - its releases: dr17 (nothing), dr19 (300 K = one sigma of systematics in Teff), dr14 (half-sigma offsets in every
//!   label, Teff errors scaled by 2); sigma_train = (50 K, 0.05, 0.02, 0.01, 0.01).

use std::path::PathBuf;
use std::sync::Arc;

use starflow_udfs::inference::{Options, StarInput, estimate_batch, estimate_with_draws};
use starflow_udfs::model::Model;
use starflow_udfs::posterior::{Estimate, bits};
use starflow_udfs::registry::InferencePool;
use starflow_udfs::{Device, ModelRegistry};

fn load(name: &str) -> Arc<Model> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    ModelRegistry::load(&dir, Device::Cpu).unwrap().require(name).unwrap()
}

fn model() -> Arc<Model> {
    load("age")
}

fn options(draws: usize, seed: u64, chunk_rows: usize, label_release: &str) -> Options {
    Options { draws, seed, chunk_rows, label_release: label_release.to_string() }
}

const MEANS: [f64; 5] = [4700.0, 2.5, 0.0, 0.0, 0.2];
const STDS: [f64; 5] = [300.0, 0.5, 0.2, 0.1, 0.1];
/// age_v2's training-label noise and correlation of Teff and age.
const SIGMA_TRAIN: [f64; 5] = [50.0, 0.05, 0.02, 0.01, 0.01];
const RHO: f64 = 0.8;
const STEP: f64 = 14.0 / 249.0;
const MU: f64 = 100.0 * STEP;
/// S (2 pi)^(-5/2): the density of a star at the training means.
fn peak_density() -> f64 {
    1.0e9 * (2.0 * std::f64::consts::PI).powf(-2.5)
}

#[test]
fn posterior_maximum_bounds_and_density_match_the_closed_form() {
    let (model, pool) = (model(), InferencePool::new(2));
    let mu = MU;
    let errors: [f64; 5] = std::array::from_fn(|i| 0.01 * STDS[i]);
    let est = estimate_batch(&model, &[Some((MEANS, errors))], &options(50, 1, 4096, ""), true, &pool).unwrap().remove(0);

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
    let expected = peak_density();
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
    let est = estimate_with_draws(&model, &draws, false).unwrap();
    let expected = peak_density() * (-2.0f64).exp();
    assert!((est.training_density.unwrap() / expected - 1.0).abs() < 1e-5, "{:?} vs {expected}", est.training_density);
}

#[test]
fn far_stars_are_flagged_and_bad_inputs_give_nulls() {
    let (model, pool) = (model(), InferencePool::new(2));
    let options = options(10, 1, 100, "");
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

/// A star's numbers are the same whatever the chunking, the batch around it and the threads: under the paper's method
/// (every star drawn) and under v2 with the dr17 release, where the stars with errors above the training noise are
/// drawn (20 rows) and the others are one row, so chunks mix stars of 250 and 5,000 flow rows.
#[test]
fn results_do_not_depend_on_chunking_batch_composition_or_threads() {
    let (pool, one_thread) = (InferencePool::new(3), InferencePool::new(1));
    let stars: Vec<StarInput> = (0..9)
        .map(|i| {
            let x: [f64; 5] = std::array::from_fn(|j| MEANS[j] + (i as f64 - 4.0) * 0.3 * STDS[j]);
            let e = if i % 3 == 0 { SIGMA_TRAIN } else { STDS.map(|s| 0.5 * s) };
            Some((x, e))
        })
        .collect();
    for model in [model(), load("age_v2")] {
        let options = |chunk_rows, seed| options(20, seed, chunk_rows, "dr17");
        let whole = estimate_batch(&model, &stars, &options(1_000_000, 9), true, &one_thread).unwrap();
        let tiny_chunks = estimate_batch(&model, &stars, &options(1, 9), true, &pool).unwrap();
        let mixed_chunks = estimate_batch(&model, &stars, &options(5_300, 9), true, &pool).unwrap();
        let one_by_one: Vec<_> = stars
            .iter()
            .map(|s| estimate_batch(&model, std::slice::from_ref(s), &options(977, 9), true, &pool).unwrap().remove(0))
            .collect();
        let name = model.name();
        assert_eq!(whole, tiny_chunks, "{name}");
        assert_eq!(whole, mixed_chunks, "{name}");
        assert_eq!(whole, one_by_one, "{name}");
        let other_seed = estimate_batch(&model, &stars, &options(1_000_000, 10), true, &pool).unwrap();
        assert_ne!(whole[1].training_density, other_seed[1].training_density, "{name}: the seed matters for a drawn star");
        if name == "age_v2" {
            assert_eq!(whole[0], other_seed[0], "a star of one row has no random numbers");
        }
    }
}

/// The normal posterior N(mean, sd) on the grid, normalized to sum 1.
fn normal_on_grid(grid: &[f64], mean: f64, sd: f64) -> Vec<f64> {
    let p: Vec<f64> = grid.iter().map(|t| (-0.5 * ((t - mean) / sd).powi(2)).exp()).collect();
    let total: f64 = p.iter().sum();
    p.into_iter().map(|v| v / total).collect()
}

/// A one-row star's estimate against N(mean, 0.6) and the density at standardized labels with |z|^2 = `z2`: the
/// posterior within the float32 rounding of log-densities of magnitude < 25 (~2e-6 relative, allowed 1e-5); median and
/// percentiles half a grid step below the continuous ones (the CDF at grid point j holds the mass of point j, i.e. the
/// continuous CDF half a step further: rule 6's convention), up to the linear interpolation between grid points
/// (h^2/8 x |F''| / F' <= 7e-4 Gyr at 1 sigma for h = 0.056, sigma = 0.6; allowed 2e-3).
fn assert_one_row_posterior(e: &Estimate, grid: &[f64], mean: f64, z2: f64) {
    let sd = (1.0 - RHO * RHO).sqrt();
    let expected = normal_on_grid(grid, mean, sd);
    for (g, (p, q)) in e.posterior.as_ref().unwrap().iter().zip(&expected).enumerate() {
        assert!((p - q).abs() <= 1e-5 * q + 1e-12, "grid point {g}: {p} vs {q}");
    }
    let nearest = grid.iter().cloned().fold(grid[0], |best, t| if (t - mean).abs() < (best - mean).abs() { t } else { best });
    assert_eq!(e.value, Some(nearest), "the maximum is the grid point nearest the mean");
    for (got, want) in [(e.median, mean), (e.p16, mean - sd), (e.p84, mean + sd)] {
        assert!((got.unwrap() - (want - 0.5 * STEP)).abs() < 2e-3, "{got:?} vs {want} - half a step");
    }
    let density = peak_density() * (-0.5 * z2).exp();
    assert!((e.training_density.unwrap() / density - 1.0).abs() < 1e-5, "density {:?} vs {density}", e.training_density);
}

#[test]
fn v2_a_star_within_the_training_noise_is_one_flow_pass_at_its_labels() {
    let (model, pool) = (load("age_v2"), InferencePool::new(2));
    // Teff 1.25 sigma above the mean, errors at (or below) the training noise: under dr17 no excess, one row.
    let mut x = MEANS;
    x[0] += 1.25 * STDS[0];
    let below: [f64; 5] = std::array::from_fn(|i| 0.5 * SIGMA_TRAIN[i]);
    let stars = [Some((x, SIGMA_TRAIN)), Some((x, below))];
    let before = model.stars_evaluated();
    let est = estimate_batch(&model, &stars, &options(50, 1, 4096, "dr17"), true, &pool).unwrap();
    assert_eq!(model.stars_evaluated() - before, 2);
    assert_eq!(est[0], est[1], "every error at or below the training noise gives the same single row");
    assert_eq!(est[0], estimate_with_draws(&model, &x, true).unwrap(), "the one row is the labels themselves");
    assert_one_row_posterior(&est[0], &model.weights.grid, MU + RHO * 1.25, 1.25 * 1.25);
    assert_eq!(est[0].bitmask, 0);
}

#[test]
fn v2_release_offsets_move_the_labels_before_the_flow_and_the_range_check() {
    let (model, pool) = (load("age_v2"), InferencePool::new(2));
    // dr14's offsets are +half a sigma in every label: a star that far above the means is at the means on the
    // training scale, where the posterior is N(mu, 0.6) with its maximum exactly at grid point 100. Teff errors of
    // 20 K are 40 K after dr14's scale of 2: below the training noise, so one row.
    let x: [f64; 5] = std::array::from_fn(|i| MEANS[i] + 0.5 * STDS[i]);
    let e = [20.0, 0.05, 0.02, 0.01, 0.01];
    let est = estimate_batch(&model, &[Some((x, e))], &options(50, 1, 4096, "dr14"), true, &pool).unwrap().remove(0);
    assert_one_row_posterior(&est, &model.weights.grid, MU, 0.0);
    assert_eq!(est.value, Some(model.weights.grid[100]));
    // The same labels read as dr17 are half a sigma high everywhere: |z|^2 = 5/4 and the age follows Teff.
    let est17 = estimate_batch(&model, &[Some((x, e))], &options(50, 1, 4096, "dr17"), true, &pool).unwrap().remove(0);
    assert_one_row_posterior(&est17, &model.weights.grid, MU + RHO * 0.5, 1.25);
    // OUT_OF_RANGE looks at the moved labels: Teff 5600 K is above train_max (5500 K) as dr17, 5450 K as dr14.
    let mut hot = MEANS;
    hot[0] = 5600.0;
    let flags = |release| {
        estimate_batch(&model, &[Some((hot, SIGMA_TRAIN))], &options(50, 1, 4096, release), false, &pool).unwrap()[0].bitmask
    };
    assert_eq!(flags("dr17") & bits::OUT_OF_RANGE, bits::OUT_OF_RANGE);
    assert_eq!(flags("dr14") & bits::OUT_OF_RANGE, 0);
}

/// The joint weighting on given draws, against the closed form computed here: post_g proportional to
/// sum_d N2(z_teff,d, t_g; corr 0.8) N(other labels of d), whatever the draws.
#[test]
fn v2_joint_weighting_matches_the_closed_form_for_given_draws() {
    let model = load("age_v2");
    let grid = &model.weights.grid;
    let draws: Vec<[f64; 5]> = [-1.0, 0.3, 1.7, 2.5]
        .iter()
        .enumerate()
        .map(|(d, z)| std::array::from_fn(|i| MEANS[i] + if i == 0 { z * STDS[0] } else { 0.1 * d as f64 * STDS[i] }))
        .collect();
    let flat: Vec<f64> = draws.iter().flatten().copied().collect();
    let est = estimate_with_draws(&model, &flat, true).unwrap();
    let z = |d: &[f64; 5], i: usize| (d[i] - MEANS[i]) / STDS[i];
    let joint = |d: &[f64; 5], t: f64| {
        let (z0, zt) = (z(d, 0), t - MU);
        let q = (z0 * z0 - 2.0 * RHO * z0 * zt + zt * zt) / (1.0 - RHO * RHO) + (1..5).map(|i| z(d, i).powi(2)).sum::<f64>();
        (-0.5 * q).exp()
    };
    let unnormalized: Vec<f64> = grid.iter().map(|&t| draws.iter().map(|d| joint(d, t)).sum()).collect();
    let total: f64 = unnormalized.iter().sum();
    let posterior = est.posterior.unwrap();
    for (g, (p, q)) in posterior.iter().zip(&unnormalized).enumerate() {
        assert!((p - q / total).abs() <= 1e-5 * (q / total) + 1e-12, "grid point {g}: {p} vs {}", q / total);
    }
    // The paper's weighting would give each draw's conditional the same weight: a mixture centred on the mean of
    // 0.8 z_d (0.7 Gyr above mu), where the joint density lets the far draws weigh little (here ~0.06 Gyr).
    let mean: f64 = posterior.iter().zip(grid).map(|(p, t)| p * t).sum();
    assert!(mean - MU < 0.3, "posterior mean {} above mu", mean - MU);
}

/// Engine draws: under dr19 (300 K of systematics in Teff) a star with e_teff = 50 K is drawn with an excess of exactly
/// one standard deviation in Teff and nothing else. With 4,000 draws the joint posterior of a star 1.5 sigma hot is
/// close to its limit N(mu + 0.8 x 1.5 / 2, sqrt(1 - 0.64 / 2)) = N(mu + 0.6, 0.825): its mean within 0.05 Gyr (the
/// importance-weighted Monte-Carlo error is ~0.012 Gyr) and its sd within 0.03; the conditional weighting's mean would
/// be mu + 1.2 and its sd 1.0.
#[test]
fn v2_excess_draws_approach_the_joint_posterior_of_a_noisy_teff() {
    let (model, pool) = (load("age_v2"), InferencePool::new(2));
    let mut x = MEANS;
    x[0] += 1.5 * STDS[0];
    let star = Some((x, SIGMA_TRAIN));
    let est = estimate_batch(&model, &[star], &options(4000, 3, 1_000_000, ""), true, &pool).unwrap().remove(0);
    let planner = model.draw_planner("dr19", 4000).unwrap();
    let plan = planner(&x, &SIGMA_TRAIN);
    assert_eq!((plan.sigma, plan.draws), ([300.0, 0.0, 0.0, 0.0, 0.0], 4000), "the default release is dr19");
    let mut rows = Vec::new();
    plan.rows(3, &mut rows);
    assert_eq!(est, estimate_with_draws(&model, &rows, true).unwrap(), "the engine evaluates the plan's draws");
    let (grid, p) = (&model.weights.grid, est.posterior.unwrap());
    let mean: f64 = p.iter().zip(grid).map(|(p, t)| p * t).sum();
    let sd = p.iter().zip(grid).map(|(p, t)| p * (t - mean).powi(2)).sum::<f64>().sqrt();
    assert!((mean - (MU + 0.6)).abs() < 0.05, "mean {mean} vs {}", MU + 0.6);
    assert!((sd - 0.68f64.sqrt()).abs() < 0.03, "sd {sd} vs {}", 0.68f64.sqrt());
}

#[test]
fn an_unknown_release_is_an_error_naming_the_models_releases_and_the_paper_method_ignores_it() {
    let pool = InferencePool::new(1);
    let star = [Some((MEANS, SIGMA_TRAIN))];
    let err = estimate_batch(&load("age_v2"), &star, &options(5, 1, 100, "dr99"), false, &pool).unwrap_err();
    assert_eq!(err, "model 'age_v2': unknown label release 'dr99' (this model knows dr14, dr17, dr19)");
    let paper = estimate_batch(&model(), &star, &options(5, 1, 100, "dr99"), false, &pool).unwrap();
    assert_eq!(paper, estimate_batch(&model(), &star, &options(5, 1, 100, ""), false, &pool).unwrap());
}
