//! Which label rows the flow sees for a star (the draw plan of the model's method, reference.py rule 3) and the
//! deterministic Monte-Carlo draws behind them: a star's draws depend only on the values drawn around, their sigmas and
//! the session seed, never on its row position, batch, partition or thread (docs/METHOD.md "Determinism").
//! Counter-based: draw `k` of a star is a pure function of (key, k), so no generator state is carried between rows.

use crate::manifest::Release;

/// Method v2: a label's excess sigma below this fraction of its training noise counts as zero, so that rounding in the
/// manifest's constants never decides whether a star is drawn (reference.py `EXCESS_TOL`).
pub const EXCESS_TOL: f64 = 1e-3;

/// The label rows of one usable star: `draws` rows drawn from N(center, sigma) per label, or, when every sigma is zero,
/// the center itself (one row, no random numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawPlan {
    /// The labels drawn around (method v2: on the training release's scale); OUT_OF_RANGE looks at these.
    pub center: [f64; 5],
    pub sigma: [f64; 5],
    pub draws: usize,
}

impl DrawPlan {
    /// The paper's method: `draws` draws from the reported errors.
    pub fn paper(labels: &[f64; 5], errors: &[f64; 5], draws: usize) -> Self {
        Self { center: *labels, sigma: *errors, draws }
    }

    /// Method v2: labels moved onto the training release (`x - offset`), drawn only for the error in excess of the
    /// training labels' noise, sqrt(max((error_scale e)^2 + sigma_sys^2 - sigma_train^2, 0)); one row when there is none.
    pub fn v2(labels: &[f64; 5], errors: &[f64; 5], release: &Release, sigma_train: &[f64; 5], draws: usize) -> Self {
        let center = std::array::from_fn(|i| labels[i] - release.offset[i]);
        let sigma = std::array::from_fn(|i| {
            let scaled = release.error_scale[i] * errors[i];
            let excess = (scaled * scaled + release.sigma_sys[i] * release.sigma_sys[i] - sigma_train[i] * sigma_train[i]).max(0.0).sqrt();
            if excess < EXCESS_TOL * sigma_train[i] { 0.0 } else { excess }
        });
        let draws = if sigma == [0.0; 5] { 1 } else { draws };
        Self { center, sigma, draws }
    }

    /// The plan's label rows, row-major `[draws][5]`.
    pub fn rows(&self, seed: u64, out: &mut Vec<f64>) {
        if self.sigma == [0.0; 5] {
            out.clear();
            (0..self.draws).for_each(|_| out.extend_from_slice(&self.center));
        } else {
            sample_labels(seed, &self.center, &self.sigma, self.draws, out);
        }
    }
}

/// SplitMix64's finaliser: a bijective mix with good avalanche, enough for keying and counters.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The key of one star: the values drawn around and their sigmas (bit patterns), and the seed.
pub fn star_key(seed: u64, values: &[f64]) -> u64 {
    values.iter().fold(mix(seed ^ GOLDEN), |h, v| mix(h.wrapping_add(GOLDEN) ^ v.to_bits()))
}

/// Uniform in the open interval (0, 1): 53 random bits, offset by half a step so 0 is never returned.
fn uniform(key: u64, counter: u64) -> f64 {
    let bits = mix(key ^ mix(counter.wrapping_mul(GOLDEN).wrapping_add(1)));
    ((bits >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal number `k` of the stream `key` (Box-Muller; the pair's cosine and sine halves are numbers 2j, 2j+1).
pub fn normal(key: u64, k: u64) -> f64 {
    let pair = k / 2;
    let u1 = uniform(key, 2 * pair);
    let u2 = uniform(key, 2 * pair + 1);
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f64::consts::TAU * u2;
    if k % 2 == 0 { r * theta.cos() } else { r * theta.sin() }
}

/// `draws` samples of the labels from independent Gaussians N(value, error), row-major `[draws][labels.len()]`.
pub fn sample_labels(seed: u64, labels: &[f64], errors: &[f64], draws: usize, out: &mut Vec<f64>) {
    let key = star_key(seed, &[labels, errors].concat());
    let n = labels.len();
    out.clear();
    out.extend((0..draws * n).map(|i| labels[i % n] + errors[i % n] * normal(key, i as u64)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(offset: [f64; 5], error_scale: [f64; 5], sigma_sys: [f64; 5]) -> Release {
        Release { offset, error_scale, sigma_sys, measured: [true; 5], n_stars: 1, source: String::new() }
    }

    #[test]
    fn v2_draws_only_the_excess_over_the_training_noise() {
        let (x, e) = ([4700.0, 2.5, -0.1, 0.05, 0.2], [50.0, 0.02, 0.01, 0.03, 0.04]);
        let sigma_train = [50.0, 0.05, 0.02, 0.03, 0.04];
        // Errors at or below the training noise: one row, the labels moved by the offsets, no random numbers.
        let r = release([10.0, 0.0, 0.05, 0.0, -0.02], [1.0; 5], [0.0; 5]);
        let plan = DrawPlan::v2(&x, &e, &r, &sigma_train, 50);
        assert_eq!(plan, DrawPlan { center: [4690.0, 2.5, -0.15000000000000002, 0.05, 0.22], sigma: [0.0; 5], draws: 1 });
        let mut rows = Vec::new();
        plan.rows(7, &mut rows);
        assert_eq!(rows, plan.center);
        // log g: (2 x 0.02)^2 + 0.04^2 - 0.05^2 = 0.0007 -> 0.02646; Teff: 2 x 50 -> sqrt(3) x 50; the rest exactly at
        // the training noise (0 within EXCESS_TOL).
        let r = release([0.0; 5], [2.0, 2.0, 1.0, 1.0, 1.0], [0.0, 0.04, 0.0, 0.0, 0.0]);
        let plan = DrawPlan::v2(&x, &e, &r, &sigma_train, 50);
        assert_eq!(plan.draws, 50);
        assert!((plan.sigma[0] - 50.0 * 3f64.sqrt()).abs() < 1e-9 && (plan.sigma[1] - 0.0007f64.sqrt()).abs() < 1e-12);
        assert_eq!(plan.sigma[2..], [0.0; 3]);
        plan.rows(7, &mut rows);
        let mut expected = Vec::new();
        sample_labels(7, &x, &plan.sigma, 50, &mut expected);
        assert_eq!(rows, expected, "the draws are keyed by the values drawn around and their sigmas");
        assert!(rows.chunks_exact(5).all(|d| d[2..] == x[2..]), "labels without excess stay at their values");
        // An excess under EXCESS_TOL x sigma_train (here 1.4e-4 of it) is no excess.
        let r = release([0.0; 5], [1.0 + 1e-8, 1.0, 1.0, 1.0, 1.0], [0.0; 5]);
        let e_at_train = sigma_train;
        assert_eq!(DrawPlan::v2(&x, &e_at_train, &r, &sigma_train, 50).draws, 1);
    }

    #[test]
    fn same_inputs_same_draws_and_any_change_gives_new_ones() {
        let (labels, errors) = ([4700.0, 2.5, -0.1, 0.05, 0.2], [50.0, 0.05, 0.01, 0.03, 0.04]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sample_labels(7, &labels, &errors, 50, &mut a);
        sample_labels(7, &labels, &errors, 50, &mut b);
        assert_eq!(a, b);
        let mut nudged = labels;
        nudged[4] = f64::from_bits(nudged[4].to_bits() + 1);
        sample_labels(7, &nudged, &errors, 50, &mut b);
        assert_ne!(a[0], b[0]);
        sample_labels(8, &labels, &errors, 50, &mut b);
        assert_ne!(a[0], b[0]);
    }

    /// The Python port (tests/data/engine_draws.py) gives bitwise these numbers: reference computations can replay the
    /// engine's draws exactly.
    #[test]
    fn matches_the_python_port() {
        let mut out = Vec::new();
        sample_labels(7, &[4700.0, 2.5, -0.1, 0.05, 0.2], &[50.0, 0.05, 0.01, 0.03, 0.04], 2, &mut out);
        let python = [
            4702.228795056341, 2.5468284261700225, -0.08838431013105885, 0.010046181440147857, 0.2058244580726817,
            4708.114228922113, 2.451581516885929, -0.09531562536999874, 0.018130475332019023, 0.16110033762063913,
        ];
        assert_eq!(out, python);
    }

    /// 200,000 normals: mean 0 and variance 1 within 5 standard errors (sd of the mean 0.0022, of the variance 0.0032),
    /// tails at the normal rate, and no correlation between consecutive numbers.
    #[test]
    fn normals_are_standard_normal() {
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n).map(|k| normal(star_key(1, &[k as f64]), k % 7)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 5.0 * (1.0 / n as f64).sqrt(), "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(), "variance {var}");
        let beyond2 = xs.iter().filter(|x| x.abs() > 2.0).count() as f64 / n as f64;
        assert!((beyond2 - 0.0455).abs() < 0.003, "P(|z|>2) = {beyond2}");
        let stream: Vec<f64> = (0..n).map(|k| normal(99, k)).collect();
        let lag1 = stream.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (n - 1) as f64;
        assert!(lag1.abs() < 0.015, "lag-1 correlation {lag1}");
    }
}
