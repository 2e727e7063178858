"""Reference ages and masses for bundled stars exactly as `queries/dr19_inputs.sql` + `starflow_age/mass` see them:
the DR19 view's float32 arithmetic, the engine's own per-star draws (engine_draws.py, a bitwise port of
udfs/src/draws.rs, default seed), ONNX Runtime for log_prob and models/train/reference.py for everything else.
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

out = {"description": __doc__.strip().splitlines()[0], "seed": engine_draws.DEFAULT_SEED, "stars": []}
for name in ["age", "mass"]:
    mdir = os.path.join(root, "models", name)
    model = reference.Model.from_manifest_file(os.path.join(mdir, "manifest.json"))
    session = ort.InferenceSession(os.path.join(mdir, "model.onnx"), providers=["CPUExecutionProvider"])
    log_prob = lambda x: session.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]
    for k, (_, r) in enumerate(table.iterrows()):
        labels, errors = dr19_inputs(r)
        draws = np.array(engine_draws.sample_labels(engine_draws.DEFAULT_SEED, labels, errors, model.draws))
        res = reference.posterior(model, labels, errors, draws, log_prob)
        if name == "age":
            out["stars"].append({"id": r.sdss4_apogee_id})
        out["stars"][k][name] = {"value": res.value, "e_p": res.e_p, "e_n": res.e_n,
                                 "training_density": res.training_density, "bitmask": int(res.bitmask)}
with open(os.path.join(here, "sql_parity.json"), "w") as f:
    json.dump(out, f, indent=1)
print(len(out["stars"]), "stars")
