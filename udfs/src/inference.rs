//! From stars to estimates: input checks, Monte-Carlo draws, the flow on every (draw, grid point) row, fed to ONNX
//! Runtime one star per call, and the posterior summary of each star.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::draws::sample_labels;
use crate::model::Model;
use crate::posterior::{Estimate, bits, summarize};
use crate::registry::InferencePool;

/// Per-query settings (`SET starflow.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Monte-Carlo draws per star.
    pub draws: usize,
    pub seed: u64,
    /// Flow rows per task of the inference pool (whole stars, at least one): the unit of parallel work.
    pub chunk_rows: usize,
}

/// Flow rows of one star (draws x evaluated grid points), all held in memory at once (~36 bytes each): bounded so that
/// a large `SET starflow.draws` or manifest fails cleanly instead of exhausting memory.
pub const MAX_ROWS_PER_STAR: usize = 10_000_000;

/// The flow rows of one star with `draws` draws on `grid_points` points, or why they are not allowed.
pub fn rows_per_star(draws: usize, grid_points: usize) -> Result<usize, String> {
    match draws.checked_mul(grid_points) {
        Some(rows) if rows > 0 && rows <= MAX_ROWS_PER_STAR => Ok(rows),
        _ => Err(format!(
            "{draws} draws x {grid_points} grid points per star: draws x grid points must be between 1 and {MAX_ROWS_PER_STAR}"
        )),
    }
}

/// One star's labels (teff, logg, fe_h, c_fe, n_fe) and their 1-sigma errors; `None` where any was null.
pub type StarInput = Option<([f64; 5], [f64; 5])>;

/// Reused between calls on one thread: no allocation per chunk once warm.
#[derive(Default)]
struct Workspace {
    draws: Vec<f64>,
    star_draws: Vec<f64>,
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
/// The usable stars are evaluated on `pool`'s threads in chunks of about `opts.chunk_rows` flow rows; a star's numbers
/// do not depend on the chunking (its draws are its own, and each star is one session call).
pub fn estimate_batch(
    model: &Model,
    stars: &[StarInput],
    opts: &Options,
    keep_posterior: bool,
    pool: &InferencePool,
) -> Result<Vec<Estimate>, String> {
    let per_star_rows = rows_per_star(opts.draws, model.eval_points.len())?;
    let chunk_stars = (opts.chunk_rows / per_star_rows).max(1);
    let good: Vec<&([f64; 5], [f64; 5])> = stars.iter().filter_map(usable).collect();
    let chunks: Vec<Vec<Estimate>> = pool.install(|| {
        good.par_chunks(chunk_stars).map(|chunk| estimate_chunk(model, chunk, opts, keep_posterior)).collect::<Result<_, _>>()
    })?;
    let mut estimates = chunks.into_iter().flatten();
    let mut out = Vec::with_capacity(stars.len());
    for star in stars {
        match usable(star) {
            None => out.push(Estimate::bad_input()),
            Some((x, _)) => {
                let mut e = estimates.next().expect("one estimate per usable star");
                if model.out_of_range(x) {
                    e.bitmask |= bits::OUT_OF_RANGE;
                }
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// One chunk of stars on this thread: their draws, then their flow rows.
fn estimate_chunk(model: &Model, chunk: &[&([f64; 5], [f64; 5])], opts: &Options, keep_posterior: bool) -> Result<Vec<Estimate>, String> {
    WORKSPACE.with(|ws| {
        let ws = &mut *ws.borrow_mut();
        let mut draws = std::mem::take(&mut ws.draws);
        draws.clear();
        for (x, e) in chunk {
            sample_labels(opts.seed, x, e, opts.draws, &mut ws.star_draws);
            draws.extend_from_slice(&ws.star_draws);
        }
        let result = estimate_drawn(model, &draws, opts.draws, keep_posterior, ws);
        ws.draws = draws;
        result
    })
}

/// Estimates for stars whose draws are given (row-major `[star][draw][label]`). Public for the parity tests, which
/// replay the reference implementation's draws.
pub fn estimate_with_draws(model: &Model, draws: &[f64], n_draws: usize, keep_posterior: bool) -> Result<Vec<Estimate>, String> {
    WORKSPACE.with(|ws| estimate_drawn(model, draws, n_draws, keep_posterior, &mut ws.borrow_mut()))
}

fn estimate_drawn(
    model: &Model,
    draws: &[f64],
    n_draws: usize,
    keep_posterior: bool,
    ws: &mut Workspace,
) -> Result<Vec<Estimate>, String> {
    let points = &model.eval_points;
    rows_per_star(n_draws, points.len())?;
    let grid_len = model.weights.grid.len();
    let mut estimates = Vec::with_capacity(draws.len() / (5 * n_draws));
    // One session call per star: ONNX Runtime's CPU kernels may round a row differently depending on where it sits in
    // the call (measured with the bundled flows: rows at odd offsets differ by ~1e-9 relative), so sharing a call
    // would make a star's numbers depend on the stars before it. One star (12,450 rows at 50 draws) is as fast.
    for star in draws.chunks_exact(5 * n_draws) {
        ws.rows.clear();
        for draw in star.chunks_exact(5) {
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
        estimates.push(summarize(&model.weights, &ws.p, keep_posterior));
    }
    model.count_evaluated(estimates.len());
    Ok(estimates)
}
