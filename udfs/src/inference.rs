//! From stars to estimates: input checks, the draw plan of the model's method, the flow on every (label row, grid
//! point) row, fed to ONNX Runtime one star per call, and the posterior summary of each star. Method v2 models also
//! evaluate each star's C-N plane for CN_ATYPICAL, and integrate out a missing log g, [C/Fe] or [N/Fe] (`joint.rs`).

use std::cell::RefCell;

use rayon::prelude::*;

use crate::draws::DrawPlan;
use crate::joint::{CnPlane, Plane};
use crate::limits::rows_per_star;
use crate::model::Model;
use crate::posterior::{Estimate, GridWeights, bits, summarize};
use crate::registry::InferencePool;

/// Per-query settings (`SET starflow.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Monte-Carlo draws of a star that is drawn (every star under the paper's method; under v2 a star whose errors
    /// exceed the training labels' noise).
    pub draws: usize,
    pub seed: u64,
    /// Flow rows per task of the inference pool (whole stars, at least one): the unit of parallel work.
    pub chunk_rows: usize,
    /// The data release of the input labels (method v2); empty: the model's default.
    pub label_release: String,
    /// Evaluate each star's C-N plane for its level and CN_ATYPICAL (models with a C-N plane).
    pub cn_flag: bool,
}

/// One star's labels (teff, logg, fe_h, c_fe, n_fe) and their 1-sigma errors, NaN where a value was null.
pub type StarInput = ([f64; 5], [f64; 5]);

/// How a star is evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Job {
    /// Every label usable: the draw plan of the model's method.
    Full(DrawPlan),
    /// Method v2, one of log g, [C/Fe], [N/Fe] missing (`label`) and the rest usable: the plan's center with the
    /// missing label integrated out (no draws).
    Missing { plan: DrawPlan, label: usize },
}

impl Job {
    fn center(&self) -> &[f64; 5] {
        match self {
            Self::Full(plan) | Self::Missing { plan, .. } => &plan.center,
        }
    }

    fn missing(&self) -> Option<usize> {
        match self {
            Self::Full(_) => None,
            Self::Missing { label, .. } => Some(*label),
        }
    }
}

/// Reused between calls on one thread: no allocation per star once warm.
#[derive(Default)]
struct Workspace {
    /// Label rows, raw units.
    draws: Vec<f64>,
    /// Standardized flow rows.
    rows: Vec<f32>,
    /// Their densities.
    density: Vec<f64>,
    /// Densities per (label row, grid point), with the Jacobian.
    p: Vec<f64>,
    /// A star missing a label: its one row, summed over the label.
    integrated: Vec<f64>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

fn usable(values: &[f64], errors: &[f64]) -> bool {
    values.iter().chain(errors).all(|v| v.is_finite()) && errors.iter().all(|v| *v > 0.0)
}

/// How `model` evaluates a star, if it can (reference.py rule 1, reference_cn.py rule 12): every label and error
/// usable; or, for a model that can integrate it out, exactly one missing (null, NaN or infinite) label among log g,
/// [C/Fe], [N/Fe] (its error is then ignored) and the other four labels and errors usable.
fn job(model: &Model, (x, e): &StarInput, planner: &impl Fn(&[f64; 5], &[f64; 5]) -> DrawPlan) -> Option<Job> {
    if usable(x, e) {
        return Some(Job::Full(planner(x, e)));
    }
    let mut missing = (0..5).filter(|&i| !x[i].is_finite());
    let (Some(label), None) = (missing.next(), missing.next()) else { return None };
    model.marginal[label].as_ref()?;
    let (mut x, mut e) = (*x, *e);
    (x[label], e[label]) = (0.0, 1.0);
    usable(&x, &e).then(|| Job::Missing { plan: planner(&x, &e), label })
}

/// The jobs of a batch (None: BAD_INPUT), with the model's planner for the session's options.
fn jobs(model: &Model, stars: &[StarInput], opts: &Options) -> Result<Vec<Option<Job>>, String> {
    rows_per_star(opts.draws, model.eval_points.len())?;
    let planner = model.draw_planner(&opts.label_release, opts.draws)?;
    Ok(stars.iter().map(|s| job(model, s, &planner)).collect())
}

/// Estimates for a batch of stars, in order. Unusable inputs (null, NaN, infinite, error <= 0) give BAD_INPUT, but
/// for a v2 model's missing label (rule 12). The usable stars are evaluated on `pool`'s threads in chunks of
/// consecutive stars holding about `opts.chunk_rows` flow rows (a star drawn 50 times counts 50 one-row stars, and
/// its C-N plane 4,010 more); a star's numbers do not depend on the chunking (its draws are its own, and each star is
/// one session call, its plane another).
pub fn estimate_batch(
    model: &Model,
    stars: &[StarInput],
    opts: &Options,
    keep_posterior: bool,
    pool: &InferencePool,
) -> Result<Vec<Estimate>, String> {
    let grid_points = model.eval_points.len();
    let jobs = jobs(model, stars, opts)?;
    let cn = model.cn.as_ref().filter(|_| opts.cn_flag);
    let rows = |job: &&Job| match job {
        Job::Full(plan) => plan.draws * grid_points + cn.map_or(0, CnPlane::rows_per_star),
        Job::Missing { label, .. } => model.marginal[*label].as_ref().map_or(0, |m| m.values.len()) * grid_points,
    };
    let good: Vec<&Job> = jobs.iter().flatten().collect();
    let chunks = chunk_by_rows(&good, rows, opts.chunk_rows);
    let estimated: Vec<Vec<Estimate>> = pool.install(|| {
        chunks.par_iter().map(|chunk| estimate_chunk(model, chunk, opts.seed, keep_posterior, cn)).collect::<Result<_, _>>()
    })?;
    let mut estimates = estimated.into_iter().flatten();
    Ok(jobs
        .iter()
        .map(|job| match job {
            None => Estimate::bad_input(),
            Some(job) => {
                let mut e = estimates.next().expect("one estimate per usable star");
                if model.out_of_range_except(job.center(), job.missing()) {
                    e.bitmask |= bits::OUT_OF_RANGE;
                }
                e
            }
        })
        .collect())
}

/// The C-N planes of a batch of stars (`starflow_cn_posterior`), in order: `None` for a star without both C and N
/// usable with the rest (a missing label has no plane), or a model without a plane.
pub fn plane_batch(model: &Model, stars: &[StarInput], opts: &Options, pool: &InferencePool) -> Result<Vec<Option<Plane>>, String> {
    let Some(cn) = &model.cn else {
        return Err(format!("model '{}' has no C-N plane (only method v2 models with a `cn` manifest section)", model.name()));
    };
    let jobs = jobs(model, stars, opts)?;
    let centers: Vec<Option<&[f64; 5]>> =
        jobs.iter().map(|job| job.as_ref().filter(|j| j.missing().is_none()).map(Job::center)).collect();
    let good: Vec<&[f64; 5]> = centers.iter().flatten().copied().collect();
    let chunks = chunk_by_rows(&good, |_| cn.rows_per_star(), opts.chunk_rows);
    let planes: Vec<Vec<Plane>> = pool.install(|| {
        chunks
            .par_iter()
            .map(|chunk| {
                WORKSPACE.with(|ws| {
                    let ws = &mut *ws.borrow_mut();
                    chunk.iter().map(|center| star_plane(model, cn, center, true, ws)).collect::<Result<Vec<_>, _>>()
                })
            })
            .collect::<Result<_, _>>()
    })?;
    model.count_evaluated(good.len());
    let mut planes = planes.into_iter().flatten();
    Ok(centers.iter().map(|c| c.map(|_| planes.next().expect("one plane per usable star"))).collect())
}

/// Consecutive runs of `items` of about `max_rows` rows each: a run closes before an item that would take it past
/// `max_rows`, and holds at least one item. Stars of 250 and of 12,500 rows mix in one batch under method v2.
fn chunk_by_rows<'a, T>(items: &'a [T], rows: impl Fn(&T) -> usize, max_rows: usize) -> Vec<&'a [T]> {
    let mut chunks = Vec::new();
    let (mut start, mut total) = (0, 0usize);
    for (i, item) in items.iter().enumerate() {
        let n = rows(item);
        if i > start && total.saturating_add(n) > max_rows {
            chunks.push(&items[start..i]);
            (start, total) = (i, 0);
        }
        total = total.saturating_add(n);
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// One chunk of stars on this thread: each star's label rows, then its flow rows; its plane where asked for.
fn estimate_chunk(
    model: &Model,
    chunk: &[&Job],
    seed: u64,
    keep_posterior: bool,
    cn: Option<&CnPlane>,
) -> Result<Vec<Estimate>, String> {
    WORKSPACE.with(|ws| {
        let ws = &mut *ws.borrow_mut();
        let mut draws = std::mem::take(&mut ws.draws);
        let estimates = chunk.iter().map(|job| estimate_job(model, job, seed, keep_posterior, cn, &mut draws, ws)).collect();
        ws.draws = draws;
        estimates
    })
}

fn estimate_job(
    model: &Model,
    job: &Job,
    seed: u64,
    keep_posterior: bool,
    cn: Option<&CnPlane>,
    draws: &mut Vec<f64>,
    ws: &mut Workspace,
) -> Result<Estimate, String> {
    match *job {
        Job::Full(plan) => {
            plan.rows(seed, draws);
            let mut e = estimate_star(model, draws, &model.weights, keep_posterior, ws)?;
            if let Some(cn) = cn {
                e.cn_level = star_plane(model, cn, &plan.center, false, ws)?.level;
                if e.cn_level.is_some_and(|level| level > cn.threshold) {
                    e.bitmask |= bits::CN_ATYPICAL;
                }
            }
            Ok(e)
        }
        Job::Missing { plan, label } => {
            let marginal = model.marginal[label].as_ref().expect("a job for a label the model integrates out");
            marginal.label_rows(label, &plan.center, draws);
            flow_matrix(model, draws, ws)?;
            marginal.integrate(&ws.p, model.weights.grid.len(), &mut ws.integrated);
            let mut e = summarize(&marginal.weights, &ws.integrated, keep_posterior);
            e.bitmask |= bits::LABEL_MARGINALISED;
            Ok(e)
        }
    }
}

/// The estimate of one star whose label rows are given (row-major `[row][label]`, raw units). Public for the parity
/// tests, which replay the reference implementation's draws; OUT_OF_RANGE and CN_ATYPICAL are the caller's (they need
/// the plan's center).
pub fn estimate_with_draws(model: &Model, draws: &[f64], keep_posterior: bool) -> Result<Estimate, String> {
    WORKSPACE.with(|ws| estimate_star(model, draws, &model.weights, keep_posterior, &mut ws.borrow_mut()))
}

/// The C-N plane of one star whose labels on the training scale are `center` (rule 11). Public for the parity tests.
pub fn plane_of(model: &Model, cn: &CnPlane, center: &[f64; 5], keep_posterior: bool) -> Result<Plane, String> {
    WORKSPACE.with(|ws| star_plane(model, cn, center, keep_posterior, &mut ws.borrow_mut()))
}

fn star_plane(model: &Model, cn: &CnPlane, center: &[f64; 5], keep_posterior: bool, ws: &mut Workspace) -> Result<Plane, String> {
    cn.rows(center, |i, v| model.standardize(i, v), &mut ws.rows);
    densities(model, &ws.rows, &mut ws.density)?;
    Ok(cn.plane(&ws.density, keep_posterior))
}

fn estimate_star(model: &Model, draws: &[f64], weights: &GridWeights, keep_posterior: bool, ws: &mut Workspace) -> Result<Estimate, String> {
    flow_matrix(model, draws, ws)?;
    Ok(summarize(weights, &ws.p, keep_posterior))
}

/// The flow densities of label rows `draws` on every evaluated grid point, into `ws.p` (`[row][grid]`, the Jacobian
/// applied; zero at grid points the transform excludes).
fn flow_matrix(model: &Model, draws: &[f64], ws: &mut Workspace) -> Result<(), String> {
    let points = &model.eval_points;
    let n_draws = draws.len() / 5;
    rows_per_star(n_draws, points.len())?;
    let grid_len = model.weights.grid.len();
    ws.rows.clear();
    for draw in draws.chunks_exact(5) {
        let labels: [f32; 5] = std::array::from_fn(|j| model.standardize(j, draw[j]));
        for &(_, target) in points {
            ws.rows.extend_from_slice(&labels);
            ws.rows.push(target);
        }
    }
    densities(model, &ws.rows, &mut ws.density)?;
    ws.p.clear();
    ws.p.resize(n_draws * grid_len, 0.0);
    for (row, density) in ws.p.chunks_exact_mut(grid_len).zip(ws.density.chunks_exact(points.len())) {
        for (&(g, _), &v) in points.iter().zip(density) {
            row[g] = v * model.weights.jacobian[g];
        }
    }
    model.count_evaluated(1);
    Ok(())
}

/// `exp(log p)` of standardized `rows` (row-major `[n, 6]`) into `out`, in one session call: ONNX Runtime's CPU
/// kernels may round a row differently depending on where it sits in the call (measured with the bundled flows: rows
/// at odd offsets differ by ~1e-9 relative), so sharing a call would make a star's numbers depend on the stars before
/// it. One star (250 to 12,450 rows) is as fast. NaN or inf log-densities only come from float overflow far from the
/// training data: zero density (reference.py rule 4).
fn densities(model: &Model, rows: &[f32], out: &mut Vec<f64>) -> Result<(), String> {
    model.with_session(|session| {
        model.log_prob(session, rows, |log_prob| {
            out.clear();
            out.extend(log_prob.iter().map(|&v| if v.is_finite() { (v as f64).exp() } else { 0.0 }));
        })
    })
}

#[cfg(test)]
mod tests {
    use super::chunk_by_rows;

    #[test]
    fn chunks_hold_whole_items_up_to_the_row_budget() {
        let rows = [250, 250, 12_500, 250, 12_500, 12_500, 250];
        let sizes = |max| chunk_by_rows(&rows, |r| *r, max).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(sizes(25_000), [4, 2, 1], "250 + 250 + 12,500 + 250 | 12,500 + 12,500 | 250");
        assert_eq!(sizes(1), [1; 7], "at least one item each");
        assert_eq!(sizes(usize::MAX), [7]);
        assert!(chunk_by_rows(&[] as &[usize], |r| *r, 10).is_empty());
    }
}
