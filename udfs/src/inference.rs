//! From stars to estimates: input checks, the draw plan of the model's method, the flow on every (label row, grid
//! point) row, fed to ONNX Runtime one star per call, and the posterior summary of each star.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::draws::DrawPlan;
use crate::limits::rows_per_star;
use crate::model::Model;
use crate::posterior::{Estimate, bits, summarize};
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
}

/// One star's labels (teff, logg, fe_h, c_fe, n_fe) and their 1-sigma errors; `None` where any was null.
pub type StarInput = Option<([f64; 5], [f64; 5])>;

/// Reused between calls on one thread: no allocation per star once warm.
#[derive(Default)]
struct Workspace {
    draws: Vec<f64>,
    rows: Vec<f32>,
    p: Vec<f64>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

fn usable(input: &StarInput) -> Option<&([f64; 5], [f64; 5])> {
    input.as_ref().filter(|(x, e)| x.iter().chain(e).all(|v| v.is_finite()) && e.iter().all(|v| *v > 0.0))
}

/// Estimates for a batch of stars, in order. Unusable inputs (null, NaN, infinite, error <= 0) give BAD_INPUT.
/// The usable stars are evaluated on `pool`'s threads in chunks of consecutive stars holding about `opts.chunk_rows`
/// flow rows (a star drawn 50 times counts 50 one-row stars); a star's numbers do not depend on the chunking (its
/// draws are its own, and each star is one session call).
pub fn estimate_batch(
    model: &Model,
    stars: &[StarInput],
    opts: &Options,
    keep_posterior: bool,
    pool: &InferencePool,
) -> Result<Vec<Estimate>, String> {
    let grid_points = model.eval_points.len();
    rows_per_star(opts.draws, grid_points)?;
    let planner = model.draw_planner(&opts.label_release, opts.draws)?;
    let plans: Vec<Option<DrawPlan>> = stars.iter().map(|s| usable(s).map(|(x, e)| planner(x, e))).collect();
    let good: Vec<&DrawPlan> = plans.iter().flatten().collect();
    let chunks = chunk_by_rows(&good, |plan| plan.draws * grid_points, opts.chunk_rows);
    let estimated: Vec<Vec<Estimate>> = pool.install(|| {
        chunks.par_iter().map(|chunk| estimate_chunk(model, chunk, opts.seed, keep_posterior)).collect::<Result<_, _>>()
    })?;
    let mut estimates = estimated.into_iter().flatten();
    Ok(plans
        .iter()
        .map(|plan| match plan {
            None => Estimate::bad_input(),
            Some(plan) => {
                let mut e = estimates.next().expect("one estimate per usable star");
                if model.out_of_range(&plan.center) {
                    e.bitmask |= bits::OUT_OF_RANGE;
                }
                e
            }
        })
        .collect())
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

/// One chunk of stars on this thread: each star's label rows, then its flow rows.
fn estimate_chunk(model: &Model, chunk: &[&DrawPlan], seed: u64, keep_posterior: bool) -> Result<Vec<Estimate>, String> {
    WORKSPACE.with(|ws| {
        let ws = &mut *ws.borrow_mut();
        let mut draws = std::mem::take(&mut ws.draws);
        let estimates = chunk
            .iter()
            .map(|plan| {
                plan.rows(seed, &mut draws);
                estimate_star(model, &draws, keep_posterior, ws)
            })
            .collect();
        ws.draws = draws;
        estimates
    })
}

/// The estimate of one star whose label rows are given (row-major `[row][label]`, raw units). Public for the parity
/// tests, which replay the reference implementation's draws; OUT_OF_RANGE is the caller's (it needs the plan's center).
pub fn estimate_with_draws(model: &Model, draws: &[f64], keep_posterior: bool) -> Result<Estimate, String> {
    WORKSPACE.with(|ws| estimate_star(model, draws, keep_posterior, &mut ws.borrow_mut()))
}

fn estimate_star(model: &Model, draws: &[f64], keep_posterior: bool, ws: &mut Workspace) -> Result<Estimate, String> {
    let points = &model.eval_points;
    let n_draws = draws.len() / 5;
    rows_per_star(n_draws, points.len())?;
    let grid_len = model.weights.grid.len();
    // One session call per star: ONNX Runtime's CPU kernels may round a row differently depending on where it sits in
    // the call (measured with the bundled flows: rows at odd offsets differ by ~1e-9 relative), so sharing a call
    // would make a star's numbers depend on the stars before it. One star (250 to 12,450 rows) is as fast.
    ws.rows.clear();
    for draw in draws.chunks_exact(5) {
        let labels: [f32; 5] = std::array::from_fn(|j| ((draw[j] - model.label_mean[j]) / model.label_std[j]) as f32);
        for &(_, target) in points {
            ws.rows.extend_from_slice(&labels);
            ws.rows.push(target);
        }
    }
    let (rows, p) = (&ws.rows, &mut ws.p);
    model.with_session(|session| {
        model.log_prob(session, rows, |log_prob| {
            p.clear();
            p.resize(n_draws * grid_len, 0.0);
            for (d, lp) in log_prob.chunks_exact(points.len()).enumerate() {
                let row = &mut p[d * grid_len..(d + 1) * grid_len];
                for (&(g, _), &v) in points.iter().zip(lp) {
                    // NaN or inf only come from float overflow far from the training data: zero density (reference.py).
                    row[g] = if v.is_finite() { (v as f64).exp() * model.weights.jacobian[g] } else { 0.0 };
                }
            }
        })
    })?;
    model.count_evaluated(1);
    Ok(summarize(&model.weights, &ws.p, keep_posterior))
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
