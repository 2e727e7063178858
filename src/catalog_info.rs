//! `starflow models` and `starflow functions`: what the engine serves, printed from the registry and the functions'
//! own documentation (so the text cannot drift from the code).

use std::fmt::Write;

use datafusion::logical_expr::ScalarUDF;
use starflow_udfs::ModelRegistry;
use starflow_udfs::locate::Context;
use starflow_udfs::functions::all_functions;
use std::sync::Arc;

/// Every model with its provenance; each model's ONNX file is opened on the configured device to prove it runs. Says
/// where the models and ONNX Runtime came from: the path, and the rule of `starflow_udfs::locate` that found it.
pub fn describe_models(registry: &ModelRegistry) -> String {
    let mut out = String::new();
    let source = registry.source.as_ref().map(ToString::to_string).unwrap_or_else(|| {
        let searched: Vec<String> = Context::of_process().places().iter().map(|p| p.models.display().to_string()).collect();
        format!("none found (no --models or STARFLOW_MODELS, and none of: {})", searched.join(", "))
    });
    let _ = writeln!(out, "models directory: {source}");
    let _ = writeln!(out, "device: {}", registry.device);
    match starflow_udfs::onnx::init() {
        Ok(runtime) => {
            let _ = writeln!(out, "onnxruntime: {}", runtime.library);
        }
        Err(e) => {
            let _ = writeln!(out, "onnxruntime: NOT AVAILABLE: {e}");
        }
    }
    for model in registry.models() {
        let m = &model.manifest;
        let t = &m.target;
        let _ = writeln!(out, "\n{} {} — {}", m.name, m.version, m.description);
        let _ = writeln!(out, "  file:      {} (sha256 {})", model.onnx_path.display(), m.onnx.sha256.as_deref().unwrap_or("not recorded"));
        let status = match model.open_session() {
            Ok(_) => format!("ok on {}", model.device),
            Err(e) => format!("FAILED: {e}"),
        };
        let _ = writeln!(out, "  session:   {status}");
        let _ = writeln!(
            out,
            "  target:    {} [{}], {} grid {}..{} ({} points), draws {}",
            t.dim.name, t.dim.unit, format!("{:?}", t.transform).to_lowercase(), t.grid.start, t.grid.stop, t.grid.num, m.default_draws
        );
        let _ = writeln!(out, "  density:   scale S = {:e}, LOW_DENSITY below {:e}", m.density.scale, m.density.threshold);
        let method = match &m.inference {
            Some(inference) => {
                let releases: Vec<&str> = inference.releases.keys().map(String::as_str).collect();
                format!("v2 (label releases {}; default {})", releases.join(", "), inference.default_release)
            }
            None => m.method.as_str().to_string(),
        };
        let _ = writeln!(out, "  method:    {method}");
        let ranges: Vec<String> =
            m.labels.iter().map(|l| format!("{} {:.3}..{:.3}", l.name, l.train_min, l.train_max)).collect();
        let _ = writeln!(out, "  trained:   {}", ranges.join(", "));
        if let Some(cn) = &m.cn {
            let _ = writeln!(
                out,
                "  C-N plane: {} x {} cells, {} target points; CN_ATYPICAL above level {}",
                cn.c.num, cn.n.num, cn.target.num, cn.threshold
            );
        }
        if let Some(marginal) = &m.marginal {
            let labels: Vec<String> = marginal.iter().map(|(label, m)| format!("{label} ({} values)", m.axis.num)).collect();
            let _ = writeln!(out, "  missing:   {} integrated out (LABEL_MARGINALISED)", labels.join(", "));
        }
        if let Some(provenance) = m.provenance.as_object() {
            let _ = writeln!(out, "  provenance:");
            for (key, value) in provenance {
                let _ = writeln!(out, "    {key}: {}", brief(value));
            }
        }
    }
    out
}

/// A provenance value on one line, long lists summarised by their length.
fn brief(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) if items.len() > 8 => format!("[{} items]", items.len()),
        other => other.to_string(),
    }
}

fn describe_function(udf: &ScalarUDF) -> Option<String> {
    let doc = udf.documentation()?;
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n\n{}\n\n```text\n{}\n```", udf.name(), doc.description, doc.syntax_example);
    if let Some(arguments) = &doc.arguments {
        let _ = writeln!(out, "\n### Arguments\n");
        for (name, description) in arguments {
            let _ = writeln!(out, "- **{name}**: {description}");
        }
    }
    if let Some(example) = &doc.sql_example {
        let _ = writeln!(out, "\n### Example\n\n{example}");
    }
    if let Some(related) = &doc.related_udfs {
        let _ = writeln!(out, "\n### Related functions\n\n{}", related.join(", "));
    }
    Some(out)
}

/// What the examples below assume (CI runs each of them so: tests/doc_examples.rs).
const FUNCTIONS_PREAMBLE: &str = "The examples run as pasted at the prompt of `starflow --input \
examples/data/astraAllStarASPCAP_apokasc3.parquet shell` in the repository (any DR19 or DR17 file works as --input): \
`starflow_input` is the view of the survey file with the ten arguments (`teff, e_teff, logg, e_logg, fe_h, e_fe_h, \
c_fe, e_c_fe, n_fe, e_n_fe`), the ids and `flag_bad`; `survey` is the file itself. Quality cuts: starflow_good.";

/// Markdown documentation of every StarFlow function, generated from their `#[user_doc]`.
pub fn describe_functions(registry: &Arc<ModelRegistry>) -> String {
    let docs: Vec<String> = all_functions(registry).iter().filter_map(describe_function).collect();
    format!("# StarFlow SQL functions\n\n{FUNCTIONS_PREAMBLE}\n\n{}", docs.join("\n"))
}
