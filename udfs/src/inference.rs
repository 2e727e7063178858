//! From stars to estimates: input checks, Monte-Carlo draws, the flow on every (draw, grid point) row, fed to ONNX
//! Runtime in chunks of bounded size, and the posterior summary of each star.

use std::cell::RefCell;

use ort::value::TensorRef;
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
    /// Flow rows per ONNX Runtime call (bounds memory: 6 float32 in and 1 out per row).
    pub chunk_rows: usize,
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
/// do not depend on the chunking (its draws are its own, and every chunk is whole stars).
pub fn estimate_batch(
    model: &Model,
    stars: &[StarInput],
    opts: &Options,
    keep_posterior: bool,
    pool: &InferencePool,
) -> Result<Vec<Estimate>, String> {
    let per_star_rows = opts.draws * model.eval_points.len();
    let chunk_stars = (opts.chunk_rows / per_star_rows.max(1)).max(1);
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

/// One chunk of stars on this thread: their draws, then one session call.
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

/// Estimates for stars whose draws are given (row-major `[star][draw][label]`), with one session call. Public for the
/// parity tests, which replay the reference implementation's draws.
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
    let n_stars = draws.len() / (5 * n_draws.max(1));
    if n_stars == 0 {
        return Ok(Vec::new());
    }
    let points = &model.eval_points;
    let n_rows = draws.len() / 5 * points.len();
    ws.rows.clear();
    ws.rows.reserve(n_rows * 6);
    for draw in draws.chunks_exact(5) {
        let labels: [f32; 5] = std::array::from_fn(|j| ((draw[j] - model.label_mean[j]) / model.label_std[j]) as f32);
        for &(_, target) in points {
            ws.rows.extend_from_slice(&labels);
            ws.rows.push(target);
        }
    }
    let onnx = &model.manifest.onnx;
    let grid_len = model.weights.grid.len();
    let rows = &ws.rows;
    let p = &mut ws.p;
    model.with_session(|session| {
        let input = TensorRef::from_array_view(([n_rows, 6usize], rows.as_slice()))
            .map_err(|e| format!("{}: {e}", model.onnx_path.display()))?;
        let outputs = session
            .run(ort::inputs![onnx.input.as_str() => input])
            .map_err(|e| format!("{}: inference failed: {e}", model.onnx_path.display()))?;
        let (_, log_prob) = outputs[onnx.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("{}: unexpected output: {e}", model.onnx_path.display()))?;
        if log_prob.len() != n_rows {
            return Err(format!("{}: {} outputs for {n_rows} rows", model.onnx_path.display(), log_prob.len()));
        }
        p.clear();
        p.resize(n_stars * n_draws * grid_len, 0.0);
        for (d, lp) in log_prob.chunks_exact(points.len()).enumerate() {
            let row = &mut p[d * grid_len..(d + 1) * grid_len];
            for (&(g, _), &v) in points.iter().zip(lp) {
                // NaN or inf only come from float overflow far from the training data: zero density (reference.py).
                row[g] = if v.is_finite() { (v as f64).exp() * model.weights.jacobian[g] } else { 0.0 };
            }
        }
        Ok(())
    })?;
    model.count_evaluated(n_stars);
    Ok(ws.p.chunks_exact(n_draws * grid_len).map(|star| summarize(&model.weights, star, keep_posterior)).collect())
}
