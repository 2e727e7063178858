"""Reference ages and masses for bundled stars exactly as `queries/dr19_inputs.sql` + the StarFlow functions see them:
the DR19 view's float32 arithmetic and label release (dr19), the engine's own per-star draws (engine_draws.py, a
bitwise port of udfs/src/draws.rs, default seed, around reference.py's draw plan), ONNX Runtime for log_prob and
models/train/reference.py for everything else; every model of models/ (both methods).
tests/udf_queries.rs compares `starflow sql` with this file: same stars, same draws, independent posterior code.
Run: python3 tests/data/make_sql_parity.py   (needs numpy, pyarrow, onnxruntime; output is committed)
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(root, "models", "train"))
import engine_draws  # noqa: E402
import reference  # noqa: E402

N_STARS = 30
table = pq.read_table(os.path.join(root, "examples/data/astraAllStarASPCAP_apokasc3.parquet")).to_pandas()
table = table[table.sdss4_apogee_id.notna()].sort_values("sdss4_apogee_id").head(N_STARS)

f32 = np.float32
def dr19_inputs(r):
    """The view's columns, computed in float32 as DataFusion does for float32 columns, then widened."""
    c_fe = f32(r.c_h) - f32(r.fe_h)
    n_fe = f32(r.n_h) - f32(r.fe_h)
    e_c_fe = np.sqrt(f32(r.e_c_h) * f32(r.e_c_h) + f32(r.e_fe_h) * f32(r.e_fe_h), dtype=f32)
    e_n_fe = np.sqrt(f32(r.e_n_h) * f32(r.e_n_h) + f32(r.e_fe_h) * f32(r.e_fe_h), dtype=f32)
    labels = [float(f32(r.teff)), float(f32(r.logg)), float(f32(r.fe_h)), float(c_fe), float(n_fe)]
    errors = [float(f32(r.e_teff)), float(f32(r.e_logg)), float(f32(r.e_fe_h)), float(e_c_fe), float(e_n_fe)]
    return labels, errors

VIEW_RELEASE = "dr19"  # what queries/dr19_inputs.sql sets
# (model, label release): the key is the model's name, or name@release for another release than the view's (v2 models
# read as DR17 labels: the training release, where most stars are one flow row)
RUNS = [("age", "dr19"), ("mass", "dr19"), ("age", "dr17"), ("mass", "dr17"), ("age_paper", "dr19"), ("mass_paper", "dr19")]
out = {"description": __doc__.strip().splitlines()[0], "seed": engine_draws.DEFAULT_SEED,
       "stars": [{"id": r.sdss4_apogee_id} for _, r in table.iterrows()]}
for name, release in RUNS:
    mdir = os.path.join(root, "models", name)
    model = reference.Model.from_manifest_file(os.path.join(mdir, "manifest.json"))
    session = ort.InferenceSession(os.path.join(mdir, "model.onnx"), providers=["CPUExecutionProvider"])
    log_prob = lambda x: session.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]
    key = name if release == VIEW_RELEASE else f"{name}@{release}"
    for k, (_, r) in enumerate(table.iterrows()):
        labels, errors = dr19_inputs(r)
        center, sigma, n = model.draw_plan(labels, errors, release)
        draws = np.array(engine_draws.plan_rows(engine_draws.DEFAULT_SEED, center, sigma, n))
        res = reference.posterior(model, labels, errors, draws, log_prob, release)
        out["stars"][k][key] = {"rows": len(draws), "value": res.value, "e_p": res.e_p, "e_n": res.e_n,
                                 "median": res.median, "p16": res.p16, "p84": res.p84,
                                 "training_density": res.training_density, "bitmask": int(res.bitmask)}
with open(os.path.join(here, "sql_parity.json"), "w") as f:
    json.dump(out, f, indent=1)
print(len(out["stars"]), "stars")
