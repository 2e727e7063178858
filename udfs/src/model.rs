//! A loaded model: its manifest, its ONNX file, and everything derived from them once (standardization constants,
//! grid weights), plus a thread-local ONNX Runtime session per worker thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ort::session::Session;
use ort::value::TensorRef;

use crate::draws::DrawPlan;
use crate::joint::{CnPlane, Marginal};
use crate::manifest::{LABELS, Manifest, Method, Transform};
use crate::onnx::{Device, create_session};
use crate::posterior::{GridWeights, Weighting};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub struct Model {
    /// Unique per load (keys the thread-local sessions).
    pub id: u64,
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub onnx_path: PathBuf,
    /// sha256 of the ONNX file's bytes as loaded (hex; empty for a model not loaded through the registry): what a
    /// cluster client sends with its queries (`starflow.model_sha256`) so that every executor serves the same model.
    pub onnx_sha256: String,
    pub device: Device,
    pub weights: GridWeights,
    /// Grid points the flow is evaluated at (the log10 transform skips M <= 0) and their standardized target.
    pub eval_points: Vec<(usize, f32)>,
    pub label_mean: [f64; 5],
    pub label_std: [f64; 5],
    /// Method v2: the C-N plane of rule 11 (manifest `cn`), if the model has one.
    pub cn: Option<CnPlane>,
    /// Method v2: per label, how a star missing it is integrated over it (manifest `marginal`; only log g, [C/Fe] and
    /// [N/Fe] can have one).
    pub marginal: [Option<Marginal>; 5],
    /// Stars evaluated so far (not counting BAD_INPUT rows), for tests and statistics.
    evaluated: AtomicU64,
    /// Say on stderr which device the model runs on when its first session opens (once per process).
    announce: AtomicBool,
}

thread_local! {
    static SESSIONS: RefCell<HashMap<u64, Session>> = RefCell::new(HashMap::new());
}

impl Model {
    pub fn from_manifest(manifest: Manifest, dir: &Path, device: Device) -> Self {
        let target = &manifest.target;
        let grid = target.grid.points();
        let (mut jacobian, mut eval_points) = (Vec::with_capacity(grid.len()), Vec::with_capacity(grid.len()));
        for (i, &v) in grid.iter().enumerate() {
            let flow_value = match target.transform {
                Transform::Linear => Some(v),
                Transform::Log10 => (v > 0.0).then(|| v.log10()),
            };
            jacobian.push(match (target.transform, flow_value) {
                (_, None) => 0.0,
                (Transform::Linear, _) => 1.0,
                (Transform::Log10, _) => 1.0 / (v * std::f64::consts::LN_10),
            });
            if let Some(y) = flow_value {
                eval_points.push((i, ((y - target.dim.mean) / target.dim.std) as f32));
            }
        }
        let weights = GridWeights {
            dstd: (grid[1] - grid[0]) / target.dim.std,
            grid,
            jacobian,
            scale: manifest.density.scale,
            threshold: manifest.density.threshold,
            weighting: match manifest.method {
                Method::Paper => Weighting::Conditional,
                Method::V2 => Weighting::Joint,
            },
        };
        let label_mean = std::array::from_fn(|i| manifest.labels[i].mean);
        let label_std = std::array::from_fn(|i| manifest.labels[i].std);
        let cn = manifest.cn.as_ref().map(|cn| CnPlane::new(cn, &manifest.labels, &target.dim));
        let marginal = std::array::from_fn(|i| {
            let axis = manifest.marginal.as_ref()?.get(LABELS[i])?;
            Some(Marginal::new(axis, &manifest.labels[i], &weights))
        });
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            onnx_path: dir.join(&manifest.onnx.file),
            onnx_sha256: String::new(),
            dir: dir.to_path_buf(),
            manifest,
            device,
            weights,
            eval_points,
            label_mean,
            label_std,
            cn,
            marginal,
            evaluated: AtomicU64::new(0),
            announce: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn set_announce(&self, announce: bool) {
        self.announce.store(announce, Ordering::Relaxed);
    }

    pub fn stars_evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::Relaxed)
    }

    pub(crate) fn count_evaluated(&self, n: usize) {
        self.evaluated.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// True if any label lies outside the training range (OUT_OF_RANGE). Method v2 tests the labels moved onto the
    /// training release (a draw plan's center).
    pub fn out_of_range(&self, labels: &[f64; 5]) -> bool {
        self.out_of_range_except(labels, None)
    }

    /// [`Model::out_of_range`] over the labels but `missing` (a star whose missing label is integrated out).
    pub fn out_of_range_except(&self, labels: &[f64; 5], missing: Option<usize>) -> bool {
        let mut known = labels.iter().zip(&self.manifest.labels).enumerate().filter(|(i, _)| Some(*i) != missing);
        known.any(|(_, (v, d))| *v < d.train_min || *v > d.train_max)
    }

    /// Label `i`'s value in the flow's standardized units.
    pub fn standardize(&self, i: usize, value: f64) -> f32 {
        ((value - self.label_mean[i]) / self.label_std[i]) as f32
    }

    /// How this model's method turns a usable star into label rows (reference.py `Model.draw_plan`): `draws`
    /// Monte-Carlo draws where the method draws, and for method v2 the constants of the release `label_release`
    /// (`starflow.label_release`; empty: the model's default). An unknown release is an error listing the model's
    /// releases; the paper's method has none and ignores the setting.
    pub fn draw_planner(
        &self,
        label_release: &str,
        draws: usize,
    ) -> Result<impl Fn(&[f64; 5], &[f64; 5]) -> DrawPlan + Sync + '_, String> {
        let v2 = match &self.manifest.inference {
            None => None,
            Some(inference) => {
                let (_, release) = inference.release(label_release).map_err(|e| format!("model '{}': {e}", self.name()))?;
                Some((release, &inference.sigma_train))
            }
        };
        Ok(move |labels: &[f64; 5], errors: &[f64; 5]| match v2 {
            Some((release, sigma_train)) => DrawPlan::v2(labels, errors, release, sigma_train, draws),
            None => DrawPlan::paper(labels, errors, draws),
        })
    }

    /// Run `f` with this thread's session of the model, creating (and checking) it on first use.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> Result<T, String>) -> Result<T, String> {
        SESSIONS.with(|sessions| {
            let mut sessions = sessions.borrow_mut();
            if !sessions.contains_key(&self.id) {
                sessions.insert(self.id, self.open_session()?);
                if self.announce.swap(false, Ordering::Relaxed) {
                    eprintln!(
                        "starflow: model '{}' {} ({}) on {}",
                        self.name(),
                        self.manifest.version,
                        self.onnx_path.display(),
                        self.device
                    );
                }
            }
            f(sessions.get_mut(&self.id).expect("inserted above"))
        })
    }

    /// Evaluate standardized `rows` (row-major `[n, 6]`) and hand their `n` log-densities to `f`.
    pub(crate) fn log_prob<T>(&self, session: &mut Session, rows: &[f32], f: impl FnOnce(&[f32]) -> T) -> Result<T, String> {
        let file = self.onnx_path.display();
        let onnx = &self.manifest.onnx;
        let n_rows = rows.len() / 6;
        let input = TensorRef::from_array_view(([n_rows, 6usize], rows)).map_err(|e| format!("{file}: {e}"))?;
        let outputs = session
            .run(ort::inputs![onnx.input.as_str() => input])
            .map_err(|e| format!("{file}: inference failed: {e}"))?;
        let (_, log_prob) = outputs[onnx.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("{file}: unexpected output: {e}"))?;
        if log_prob.len() != n_rows {
            return Err(format!("{file}: {} outputs for {n_rows} rows", log_prob.len()));
        }
        Ok(f(log_prob))
    }

    /// Open a session on the model's device and evaluate a probe: two rows at the standardized origin, the centre of
    /// the training data, where any working flow has a finite density. A file that ONNX Runtime cannot open, with the
    /// wrong inputs or outputs, that fails to run or gives NaN there is refused when the model is loaded, instead of
    /// at its first star (or with null numbers for every star).
    pub fn check(&self) -> Result<(), String> {
        let mut session = self.open_session()?;
        let finite = self.log_prob(&mut session, &[0.0; 12], |lp| lp.iter().all(|v| v.is_finite()))?;
        if !finite {
            return Err(format!(
                "{}: the log-density at the centre of the training data (the standardized origin) is not finite",
                self.onnx_path.display()
            ));
        }
        Ok(())
    }

    /// A new session, checked against the manifest: one float32 input `[N, 6]`, one float32 output `[N]`.
    pub fn open_session(&self) -> Result<Session, String> {
        let session = create_session(&self.onnx_path, self.device)?;
        let file = self.onnx_path.display();
        let onnx = &self.manifest.onnx;
        let input = session.inputs().iter().find(|i| i.name() == onnx.input);
        let output = session.outputs().iter().find(|o| o.name() == onnx.output);
        let (Some(input), Some(output)) = (input, output) else {
            return Err(format!("{file}: the model must have input '{}' and output '{}'", onnx.input, onnx.output));
        };
        let float = Some(ort::value::TensorElementType::Float32);
        let input_ok = input.dtype().tensor_type() == float
            && input.dtype().tensor_shape().is_some_and(|s| s.len() == 2 && s[1] == 6);
        let output_ok = output.dtype().tensor_type() == float && output.dtype().tensor_shape().is_some_and(|s| s.len() == 1);
        if !input_ok || !output_ok {
            return Err(format!(
                "{file}: expected input '{}' float32[N, 6] and output '{}' float32[N], found {:?} and {:?}",
                onnx.input,
                onnx.output,
                input.dtype(),
                output.dtype()
            ));
        }
        Ok(session)
    }
}
