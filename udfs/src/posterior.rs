//! The per-star posterior (docs/METHOD.md), from the flow densities p_dg to the summary numbers and quality bits.
//! Mirrors `models/train/reference.py` step for step (its docstring is the precise rule set); the fixtures hold both to
//! the same numbers. Non-finite flow log-densities (float overflow far outside the training data) count as zero density
//! (`inference.rs`).

/// BITMASK bits (docs/METHOD.md sec. 11).
pub mod bits {
    pub const LOW_DENSITY: i64 = 1;
    pub const GRID_EDGE: i64 = 2;
    pub const BAD_INPUT: i64 = 4;
    pub const OUT_OF_RANGE: i64 = 8;
    pub const MULTIMODAL: i64 = 16;
    pub const CN_ATYPICAL: i64 = 32;

    /// Names in bit order, as `starflow_flag_names` reports them.
    pub const NAMES: [(i64, &str); 6] = [
        (LOW_DENSITY, "LOW_DENSITY"),
        (GRID_EDGE, "GRID_EDGE"),
        (BAD_INPUT, "BAD_INPUT"),
        (OUT_OF_RANGE, "OUT_OF_RANGE"),
        (MULTIMODAL, "MULTIMODAL"),
        (CN_ATYPICAL, "CN_ATYPICAL"),
    ];
}

/// Probability mass on each side of the maximum for the 1-sigma interval.
const HALF_SIGMA_MASS: f64 = 0.34;

/// Where the 0.34 window runs past an end of the posterior, the paper's bound is "the value where CDF = 0" (or 1): an
/// interval, not a value. The bound is the posterior's edge instead, where its CDF reaches this numerically-zero mass;
/// the first grid value would report e.g. e_n_mass = -mass for a star whose posterior is zero below 0.6 Msun.
const TAIL_MASS: f64 = 1e-9;

/// Phi(-1), the standard normal's 1-sigma tail: p16 and p84 are the posterior's quantiles at this and 1 - this.
pub const PHI_M1: f64 = 0.15865525393145707;

/// How the draws of a star are combined into its posterior (reference.py rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// The paper's: each draw's conditional p(t | x_d) normalized on its own, then averaged.
    Conditional,
    /// Method v2: the joint density p(t, x_d) summed over the draws and normalized once, so that a draw where the
    /// training data hardly reach weighs little.
    Joint,
}

/// What a model's grid contributes to every star: the grid, and per point the factor turning the flow's density into
/// density per unit of the grid variable (1 for a linear target, the Jacobian 1/(M ln 10) for log10, 0 where the
/// transform is undefined).
#[derive(Debug, Clone)]
pub struct GridWeights {
    pub grid: Vec<f64>,
    pub jacobian: Vec<f64>,
    /// Grid step in standardized target units: turns a sum over the grid into an integral over the target.
    pub dstd: f64,
    /// S of docs/METHOD.md sec. 8.
    pub scale: f64,
    pub threshold: f64,
    pub weighting: Weighting,
}

/// One star's outputs. Everything but `training_density` and `bitmask` is absent when no draw gave a usable density.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The maximum of the posterior (the VAC's ML estimate) and its signed 1-sigma offsets.
    pub value: Option<f64>,
    pub e_p: Option<f64>,
    pub e_n: Option<f64>,
    /// The posterior's median and its 16th/84th percentiles (Phi(-1), 1 - Phi(-1)).
    pub median: Option<f64>,
    pub p16: Option<f64>,
    pub p84: Option<f64>,
    pub training_density: Option<f64>,
    pub bitmask: i64,
    pub posterior: Option<Vec<f64>>,
}

impl Estimate {
    /// No estimate: only the density (if any) and the bits.
    fn none(training_density: Option<f64>, bitmask: i64) -> Self {
        Self { value: None, e_p: None, e_n: None, median: None, p16: None, p84: None, training_density, bitmask, posterior: None }
    }

    pub fn bad_input() -> Self {
        Self::none(None, bits::BAD_INPUT)
    }
}

/// Summarize `p` (row-major `[draws][grid]`, Jacobian already applied) into the star's estimate.
/// `keep_posterior` keeps the 250 values (only the posterior functions need them).
pub fn summarize(w: &GridWeights, p: &[f64], keep_posterior: bool) -> Estimate {
    let g = w.grid.len();
    let sums = || p.chunks_exact(g).map(|row| (row, row.iter().sum::<f64>()));
    let kept = |s: f64| s.is_finite() && s > 0.0;
    let (mut finite, mut finite_sum, mut n_kept, mut largest) = (0usize, 0.0f64, 0usize, 0.0f64);
    for (_, s) in sums().filter(|(_, s)| s.is_finite()) {
        finite += 1;
        finite_sum += s;
        if kept(s) {
            n_kept += 1;
            largest = largest.max(s);
        }
    }
    let training_density = (finite > 0).then(|| w.scale * (finite_sum / finite as f64) * w.dstd);
    let mut bitmask = 0;
    if !training_density.is_some_and(|d| d >= w.threshold) {
        bitmask |= bits::LOW_DENSITY;
    }
    if n_kept == 0 {
        return Estimate::none(training_density, bitmask);
    }
    // Conditional: each draw divided by its own sum. Joint: every draw divided by the largest sum, which leaves the
    // ratio sum_d p_dg / sum_d s_d as it is but keeps the sums of huge densities finite. With one draw both are p / s.
    let (mut post, mut norm) = (vec![0.0; g], 0.0);
    for (row, s) in sums().filter(|(_, s)| kept(*s)) {
        let by = match w.weighting {
            Weighting::Conditional => s,
            Weighting::Joint => largest,
        };
        post.iter_mut().zip(row).for_each(|(acc, v)| *acc += v / by);
        norm += s / by;
    }
    post.iter_mut().for_each(|v| *v /= norm);

    let i_max = argmax(&post);
    let value = w.grid[i_max];
    let mut cdf: Vec<f64> = post
        .iter()
        .scan(0.0, |acc, v| {
            *acc += v;
            Some(*acc)
        })
        .collect();
    let total = cdf[g - 1];
    cdf.iter_mut().for_each(|c| *c /= total);
    let c0 = cdf[i_max];
    // Bounded by c0: a mode holding all the mass on one side (c0 == 1) keeps that bound at the mode.
    let lower = inverse_cdf(&cdf, &w.grid, (c0 - HALF_SIGMA_MASS).max(TAIL_MASS).min(c0));
    let upper = inverse_cdf(&cdf, &w.grid, (c0 + HALF_SIGMA_MASS).min(1.0 - TAIL_MASS).max(c0));
    if i_max == 0 || i_max == g - 1 {
        bitmask |= bits::GRID_EDGE;
    }
    if is_multimodal(&post) {
        bitmask |= bits::MULTIMODAL;
    }
    let quantile = |t: f64| Some(inverse_cdf(&cdf, &w.grid, t));
    Estimate {
        value: Some(value),
        e_p: Some(upper - value),
        e_n: Some(lower - value),
        median: quantile(0.5),
        p16: quantile(PHI_M1),
        p84: quantile(1.0 - PHI_M1),
        training_density,
        bitmask,
        posterior: keep_posterior.then_some(post),
    }
}

/// First index of the maximum (numpy.argmax).
fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// Linear interpolation of the inverse CDF at `t`: between the first point with `cdf >= t` and the one before it.
fn inverse_cdf(cdf: &[f64], grid: &[f64], t: f64) -> f64 {
    let j = cdf.iter().position(|&c| c >= t).unwrap_or(cdf.len() - 1);
    if j == 0 {
        return grid[0];
    }
    let (c0, c1) = (cdf[j - 1], cdf[j]);
    grid[j - 1] + (t - c0) / (c1 - c0) * (grid[j] - grid[j - 1])
}

/// A local maximum: a positive point strictly above its left neighbour and at least as high as its right one
/// (endpoints count; a flat top counts once, at its left end).
fn is_local_max(post: &[f64], i: usize) -> bool {
    post[i] > 0.0 && (i == 0 || post[i] > post[i - 1]) && (i == post.len() - 1 || post[i] >= post[i + 1])
}

/// A second mode: a local maximum other than the global one, at least half as high, with a real dip between them (the
/// posterior falls to 90% of the second peak or lower). The dip condition keeps the small ripples of a ReLU flow's
/// posterior on a flat top or a shoulder from counting as modes.
fn is_multimodal(post: &[f64]) -> bool {
    let i1 = argmax(post);
    (0..post.len()).filter(|&j| j != i1 && is_local_max(post, j) && post[j] >= 0.5 * post[i1]).any(|j| {
        let between = &post[i1.min(j)..=i1.max(j)];
        between.iter().cloned().fold(f64::INFINITY, f64::min) <= 0.9 * post[j]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(grid: Vec<f64>) -> GridWeights {
        let n = grid.len();
        GridWeights { dstd: grid[1] - grid[0], grid, jacobian: vec![1.0; n], scale: 1.0, threshold: 0.5, weighting: Weighting::Conditional }
    }

    fn joint(grid: Vec<f64>) -> GridWeights {
        GridWeights { weighting: Weighting::Joint, ..weights(grid) }
    }

    #[test]
    fn gaussian_posterior_gives_its_mode_and_symmetric_one_sigma_bounds() {
        // One draw with p = N(7, 1) on a fine grid: ML = 7, bounds at the 0.5 -/+ 0.34 quantiles = 7 -/+ 0.994458.
        let grid: Vec<f64> = (0..=1400).map(|i| i as f64 * 0.01).collect();
        let p: Vec<f64> = grid.iter().map(|t| (-0.5 * (t - 7.0f64).powi(2)).exp() / (2.0 * std::f64::consts::PI).sqrt()).collect();
        let e = summarize(&weights(grid), &p, true);
        assert_eq!(e.value, Some(7.0));
        // The CDF is a Riemann sum (step 0.01) starting at the first point: allow half a step.
        assert!((e.e_p.unwrap() - 0.994458).abs() < 0.006, "{:?}", e.e_p);
        assert!((e.e_n.unwrap() + 0.994458).abs() < 0.006, "{:?}", e.e_n);
        // Median and 16th/84th percentiles of N(7, 1): 7 and 7 -/+ 1, within the same half step.
        for (got, expected) in [(e.median, 7.0), (e.p16, 6.0), (e.p84, 8.0)] {
            assert!((got.unwrap() - expected).abs() < 0.006, "{got:?} vs {expected}");
        }
        // Density = integral of p over the grid (dstd = step here) = 1 (the tails beyond 0 and 14 are ~1e-12).
        assert!((e.training_density.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(e.bitmask, 0);
        assert!((e.posterior.unwrap().iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn draws_are_normalized_separately_and_unusable_draws_dropped() {
        let w = weights(vec![0.0, 1.0, 2.0, 3.0]);
        // Draw 1 peaks at 1, draw 2 (ten times denser) at 3: after per-draw normalisation they weigh the same.
        // Draw 3 is all zero (kept for density as zero, dropped from the posterior), draw 4 is non-finite (dropped).
        let p = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, f64::NAN, 1.0, 1.0, 1.0];
        let e = summarize(&w, &p, true);
        assert_eq!(e.posterior.as_deref(), Some(&[0.0, 0.5, 0.0, 0.5][..]));
        assert_eq!(e.value, Some(1.0)); // the first of equal maxima
        assert_eq!(e.training_density, Some(11.0 / 3.0));
        assert_eq!(e.bitmask, bits::MULTIMODAL, "two equal peaks");
    }

    #[test]
    fn joint_weighting_sums_the_draws_densities_and_normalizes_once() {
        // The draws of the test above: the ten times denser draw now weighs ten times more; the zero draw and the
        // non-finite one are dropped from the posterior as before, and the density is the same.
        let p = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, f64::NAN, 1.0, 1.0, 1.0];
        let e = summarize(&joint(vec![0.0, 1.0, 2.0, 3.0]), &p, true);
        assert_eq!(e.posterior.as_deref(), Some(&[0.0, 1.0 / 11.0, 0.0, 10.0 / 11.0][..]));
        assert_eq!((e.value, e.training_density, e.bitmask), (Some(3.0), Some(11.0 / 3.0), bits::GRID_EDGE));
        // With one draw the two weightings are the same posterior, bit for bit.
        let one = [0.0, 0.0, 0.0, 0.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0];
        let grid: Vec<f64> = (0..=10).map(f64::from).collect();
        assert_eq!(summarize(&joint(grid.clone()), &one, true), summarize(&weights(grid), &one, true));
    }

    /// Percentiles by the inverse CDF of the bounds, as models/train/reference.py `percentiles` gives them.
    #[test]
    fn median_and_percentiles_interpolate_the_cdf() {
        let w = weights((0..=10).map(f64::from).collect());
        // The same numbers up to rounding: the engine normalizes the posterior before it sums the CDF.
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        let e = summarize(&w, &[1.0; 11], false);
        assert!(close(e.median, 4.5) && close(e.p16, 0.7452077932460278) && close(e.p84, 8.254792206753972), "{e:?}");
        let e = summarize(&w, &[0.0, 0.0, 0.0, 0.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0], false);
        assert!(close(e.median, 4.875) && close(e.p16, 3.539427863366954) && close(e.p84, 7.201907122110153), "{e:?}");
    }

    #[test]
    fn no_usable_draw_means_no_estimate_and_low_density() {
        let w = weights(vec![0.0, 1.0, 2.0]);
        let e = summarize(&w, &[0.0; 6], true);
        assert_eq!((e.value, e.posterior.clone(), e.training_density, e.median), (None, None, Some(0.0), None));
        assert_eq!(e.bitmask, bits::LOW_DENSITY);
        let e = summarize(&w, &[f64::INFINITY, 0.0, 0.0], true);
        assert_eq!((e.value, e.training_density), (None, None));
        assert_eq!(e.bitmask, bits::LOW_DENSITY);
    }

    #[test]
    fn edge_maximum_and_interval_clamped_to_the_grid() {
        let w = weights(vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let e = summarize(&w, &[8.0, 4.0, 2.0, 1.0, 1.0], false);
        assert_eq!(e.value, Some(0.0));
        assert_eq!(e.e_n, Some(0.0), "lower bound clamps at the first grid point");
        assert!(e.e_p.unwrap() > 0.0);
        assert_eq!(e.bitmask, bits::GRID_EDGE);
        assert_eq!(e.posterior, None);
    }

    /// The cases of models/train/test_reference.py.
    #[test]
    fn clamped_bounds_stop_at_the_edge_of_the_posterior() {
        let w = weights((0..=10).map(f64::from).collect());
        // The mode (4) holds 10/34 < 0.34 below it: the lower bound is where the posterior starts (3), not grid[0].
        let e = summarize(&w, &[0.0, 0.0, 0.0, 0.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0], false);
        assert_eq!(e.value, Some(4.0));
        assert!((e.e_n.unwrap() + 1.0).abs() < 1e-6, "{:?}", e.e_n);
        // Mirrored: the mode is the last non-zero point (CDF 1 there), so the upper bound is the mode itself.
        let e = summarize(&w, &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 0.0, 0.0, 0.0, 0.0], false);
        assert_eq!((e.value, e.e_p), (Some(6.0), Some(0.0)));
        // A posterior that really reaches the grid's start keeps its lower bound there.
        let e = summarize(&w, &[5.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0], false);
        assert_eq!((e.value, e.e_n), (Some(1.0), Some(-1.0)));
    }

    #[test]
    fn multimodality_needs_a_second_peak_at_least_half_as_high() {
        assert!(!is_multimodal(&[0.0, 1.0, 0.2, 0.49, 0.0]));
        assert!(is_multimodal(&[0.0, 1.0, 0.2, 0.5, 0.0]));
        assert!(!is_multimodal(&[0.2, 0.5, 0.5, 0.5, 0.1]), "a flat top is one peak");
        assert!(is_multimodal(&[0.6, 0.1, 0.0, 1.0, 0.0]), "endpoints count");
        assert!(!is_multimodal(&[0.1, 1.0, 0.95, 0.96, 0.2]), "a ripple without a 10% dip is no second mode");
        assert!(is_multimodal(&[0.1, 1.0, 0.86, 0.96, 0.2]), "a 10% dip is");
    }
}
