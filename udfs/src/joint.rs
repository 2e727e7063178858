//! The flow as a joint density beyond a star's target posterior (docs/METHOD.md sec. 9-10, the rules 11 and 12 of
//! `models/train/reference_cn.py`): the [C/Fe]-[N/Fe] plane of a star and the level of its measured (C, N), which sets
//! CN_ATYPICAL; and the label rows of a star missing log g, [C/Fe] or [N/Fe], whose densities are summed over that
//! label. `inference.rs` evaluates the rows (one ONNX Runtime call per star, as for every other star).

use crate::manifest::{Cn, Dimension, MarginalAxis};
use crate::posterior::GridWeights;

/// The label columns of [C/Fe] and [N/Fe].
const C: usize = 3;
const N: usize = 4;

/// A model's C-N plane (manifest `cn`), with its axes standardized once.
#[derive(Debug, Clone)]
pub struct CnPlane {
    /// [C/Fe] and [N/Fe] values of the cells (dex): the posterior is `c.len() x n.len()`, c slowest.
    pub c: Vec<f64>,
    pub n: Vec<f64>,
    /// Target values the plane is summed over, in the flow's units (Gyr; log10(M/Msun) for mass).
    pub target: Vec<f64>,
    /// CN_ATYPICAL where a star's level exceeds this.
    pub threshold: f64,
    c_std: Vec<f32>,
    n_std: Vec<f32>,
    target_std: Vec<f32>,
    /// Target step in standardized units: the sum over the target points times this is the integral.
    dy: f64,
}

/// One star's plane: the normalized posterior over the cells (c slowest; kept only when asked for) and the level of the
/// measured (C, N). All `None` when the flow gives the plane no density (far outside the training data).
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub posterior: Option<Vec<f64>>,
    pub level: Option<f64>,
    /// The measured (C, N)'s density on the posterior's scale (`m_obs / sum m`): the level counts the cells above it.
    pub measured: Option<f64>,
}

fn standardized(values: &[f64], dim: &Dimension) -> Vec<f32> {
    values.iter().map(|v| ((v - dim.mean) / dim.std) as f32).collect()
}

impl CnPlane {
    pub fn new(cn: &Cn, labels: &[Dimension], target: &Dimension) -> Self {
        let (c, n, y) = (cn.c.points(), cn.n.points(), cn.target.points());
        Self {
            c_std: standardized(&c, &labels[C]),
            n_std: standardized(&n, &labels[N]),
            target_std: standardized(&y, target),
            dy: (y[1] - y[0]) / target.std,
            c,
            n,
            target: y,
            threshold: cn.threshold,
        }
    }

    /// The plane's standardized flow rows for a star whose labels on the training scale are `center` (`standardize`
    /// maps label i's value): every (c, n, target) point, c slowest and the target fastest, then the measured (c, n)
    /// at every target point.
    pub fn rows(&self, center: &[f64; 5], standardize: impl Fn(usize, f64) -> f32, rows: &mut Vec<f32>) {
        let (teff, logg, fe_h) = (standardize(0, center[0]), standardize(1, center[1]), standardize(2, center[2]));
        rows.clear();
        let mut push = |c: f32, n: f32| {
            for &y in &self.target_std {
                rows.extend_from_slice(&[teff, logg, fe_h, c, n, y]);
            }
        };
        for &c in &self.c_std {
            for &n in &self.n_std {
                push(c, n);
            }
        }
        push(standardize(C, center[C]), standardize(N, center[N]));
    }

    /// The plane from the flow densities of [`CnPlane::rows`] (non-finite log-densities already zero):
    /// `m_kl = sum_m p * dy`, the posterior `m / sum m`, and the level, the probability of the cells denser than the
    /// measured point, `sum_{m_kl > m_obs} m_kl / sum m`.
    pub fn plane(&self, p: &[f64], keep_posterior: bool) -> Plane {
        let per_cell = self.target.len();
        let (cells, measured) = p.split_at(p.len() - per_cell);
        let m: Vec<f64> = cells.chunks_exact(per_cell).map(|t| t.iter().sum::<f64>() * self.dy).collect();
        let m_obs = measured.iter().sum::<f64>() * self.dy;
        let total: f64 = m.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Plane { posterior: None, level: None, measured: None };
        }
        let level = m.iter().filter(|&&v| v > m_obs).sum::<f64>() / total;
        let posterior = keep_posterior.then(|| m.iter().map(|v| v / total).collect());
        Plane { posterior, level: Some(level), measured: Some(m_obs / total) }
    }

    /// Flow rows of one star's plane.
    pub fn rows_per_star(&self) -> usize {
        (self.c.len() * self.n.len() + 1) * self.target.len()
    }
}

/// How a model integrates out one missing label (manifest `marginal`): the values it takes, their step in standardized
/// units, and the model's grid weights with the four-label density threshold.
#[derive(Debug, Clone)]
pub struct Marginal {
    pub values: Vec<f64>,
    du: f64,
    pub weights: GridWeights,
}

impl Marginal {
    pub fn new(axis: &MarginalAxis, label: &Dimension, weights: &GridWeights) -> Self {
        let values = axis.axis.points();
        Self { du: (values[1] - values[0]) / label.std, values, weights: GridWeights { threshold: axis.threshold, ..weights.clone() } }
    }

    /// The label rows (`[values][5]`, raw units): `center` with the missing `label` at each of the axis' values.
    pub fn label_rows(&self, label: usize, center: &[f64; 5], out: &mut Vec<f64>) {
        out.clear();
        for &u in &self.values {
            let mut row = *center;
            row[label] = u;
            out.extend_from_slice(&row);
        }
    }

    /// The one "draw" of the star: the rows' densities `p` (`[values][grid]`) summed over the label, times its step.
    pub fn integrate(&self, p: &[f64], grid_len: usize, out: &mut Vec<f64>) {
        out.clear();
        out.resize(grid_len, 0.0);
        for row in p.chunks_exact(grid_len) {
            out.iter_mut().zip(row).for_each(|(acc, v)| *acc += v);
        }
        out.iter_mut().for_each(|v| *v *= self.du);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Grid;
    use crate::posterior::Weighting;

    fn dim(mean: f64, std: f64) -> Dimension {
        Dimension { name: String::new(), unit: String::new(), mean, std, train_min: -1.0, train_max: 1.0 }
    }

    fn plane() -> CnPlane {
        let axis = |start, stop, num| Grid { start, stop, num };
        let cn = Cn { c: axis(-1.0, 1.0, 3), n: axis(0.0, 1.0, 2), target: axis(0.0, 2.0, 3), threshold: 0.5, threshold_quantile: None };
        CnPlane::new(&cn, &[dim(0.0, 1.0), dim(0.0, 1.0), dim(0.0, 1.0), dim(0.0, 0.5), dim(1.0, 1.0)], &dim(1.0, 2.0))
    }

    #[test]
    fn plane_rows_run_c_slowest_then_n_then_the_target_and_end_at_the_measured_point() {
        let (plane, mut rows) = (plane(), Vec::new());
        plane.rows(&[1.0, 2.0, 3.0, 0.25, 0.5], |i, v| (v * 10.0 + i as f64) as f32, &mut rows);
        assert_eq!(rows.len(), 6 * plane.rows_per_star());
        assert_eq!(plane.rows_per_star(), 3 * 2 * 3 + 3);
        let row = |k: usize| &rows[6 * k..6 * k + 6];
        // c = -1 (standardized -2), n = 0 (-1), target 0 (-0.5), the other labels through `standardize`.
        assert_eq!(row(0), [10.0, 21.0, 32.0, -2.0, -1.0, -0.5]);
        assert_eq!(row(1)[5], 0.0, "the target runs fastest");
        assert_eq!(row(3)[3..5], [-2.0, 0.0], "then n");
        assert_eq!(row(6)[3..5], [0.0, -1.0], "then c");
        assert_eq!(row(18), [10.0, 21.0, 32.0, 5.5, 9.0, -0.5], "the measured (c, n) through `standardize`");
    }

    #[test]
    fn level_is_the_probability_of_the_denser_cells() {
        let plane = plane();
        // Six cells of densities 1..6 (each the same at its three target points), the measured point as dense as the
        // third: the level is (4 + 5 + 6) / 21, the posterior the densities over 21 (the step dy = 1/2 cancels).
        let mut p: Vec<f64> = (1..=6).flat_map(|v| [v as f64; 3]).collect();
        p.extend([3.0; 3]);
        let got = plane.plane(&p, true);
        assert!((got.level.unwrap() - 15.0 / 21.0).abs() < 1e-15, "{got:?}");
        assert_eq!(got.measured, Some(4.5 / 31.5));
        let expected: Vec<f64> = (1..=6).map(|v| v as f64 * 1.5 / 31.5).collect();
        assert_eq!(got.posterior, Some(expected));
        // The densest point has level 0; a point less dense than every cell has level 1; no posterior unless asked.
        p[18..].fill(7.0);
        assert_eq!(plane.plane(&p, false), Plane { posterior: None, level: Some(0.0), measured: Some(10.5 / 31.5) });
        p[18..].fill(0.0);
        assert_eq!(plane.plane(&p, false).level, Some(1.0));
        // A plane without density (or with an overflowing one) has neither.
        let empty = Plane { posterior: None, level: None, measured: None };
        assert_eq!(plane.plane(&[0.0; 21], true), empty);
        assert_eq!(plane.plane(&[f64::INFINITY; 21], true), empty);
    }

    #[test]
    fn a_missing_label_takes_every_value_of_its_axis_and_is_summed_over_them() {
        let weights = GridWeights { grid: vec![0.0, 1.0], jacobian: vec![1.0; 2], dstd: 1.0, scale: 1.0, threshold: 9.0, weighting: Weighting::Joint };
        let axis = MarginalAxis { axis: Grid { start: 0.0, stop: 1.0, num: 3 }, threshold: 2.0 };
        let m = Marginal::new(&axis, &dim(0.0, 0.25), &weights);
        assert_eq!((m.values.clone(), m.du, m.weights.threshold, m.weights.scale), (vec![0.0, 0.5, 1.0], 2.0, 2.0, 1.0));
        let mut rows = Vec::new();
        m.label_rows(1, &[1.0, 9.0, 3.0, 4.0, 5.0], &mut rows);
        assert_eq!(rows, [1.0, 0.0, 3.0, 4.0, 5.0, 1.0, 0.5, 3.0, 4.0, 5.0, 1.0, 1.0, 3.0, 4.0, 5.0]);
        let mut one = Vec::new();
        m.integrate(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, &mut one);
        assert_eq!(one, [18.0, 24.0]);
    }
}
