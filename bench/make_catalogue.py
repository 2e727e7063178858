"""A synthetic DR19 astraAllStarASPCAP (or DR17 allStar) catalogue for benchmarks: N stars resampled (with
replacement) from the bundled real stars and perturbed within their errors, in the bundled file's exact schema.

    python bench/make_catalogue.py N OUT.parquet [--seed S] [--layout dr19|dr17]

dr19 (examples/data/astraAllStarASPCAP_apokasc3.parquet): teff, logg, fe_h, c_h and n_h get a Gaussian offset of their
own e_* column; the errors are kept. sdss_id and catalogid are unique (the bundled ones are null); sdss4_apogee_id is
the parent star's, so it repeats. dr17 (examples/data/dr17_allstar_sample.parquet, 200 stars with DR17's own [C/Fe],
[N/Fe] and their errors): TEFF, LOGG, FE_H, C_FE and N_FE the same way with their *_ERR columns; APOGEE_ID repeats.
The key-value metadata says `synthetic: true` with generator, seed and source, so the file cannot be mistaken for
survey data. Rows are generated and written one row group at a time, so memory stays flat for any N.
"""
import argparse
import datetime
import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# layout -> (source file, perturbed column -> its error column, unique synthetic ids)
LAYOUTS = {
    "dr19": ("astraAllStarASPCAP_apokasc3.parquet", {c: "e_" + c for c in ["teff", "logg", "fe_h", "c_h", "n_h"]}, True),
    "dr17": ("dr17_allstar_sample.parquet", {c: c + "_ERR" for c in ["TEFF", "LOGG", "FE_H", "C_FE", "N_FE"]}, False),
}
ROW_GROUP = 65536
# Far from any real SDSS-V id, so a synthetic row can never be joined to a real one by accident.
SDSS_ID_BASE = 9_000_000_000_000
CATALOGID_BASE = 9_100_000_000_000


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_catalogue(n, out, seed=1, layout="dr19"):
    file, perturbed, ids = LAYOUTS[layout]
    source_path = os.path.join(ROOT, "examples", "data", file)
    source = pq.read_table(source_path)
    schema = source.schema.remove_metadata()  # the source's per-row metadata describes its own rows, not ours
    provenance = {
        "synthetic": True,
        "generator": "bench/make_catalogue.py",
        "seed": seed,
        "rows": n,
        "source": os.path.relpath(source_path, ROOT),
        "source_sha256": sha256(source_path),
        "method": "rows resampled with replacement from the source; " + ", ".join(perturbed)
                  + " each + N(0, its error column), computed in float64 and stored as float32; errors kept; "
                  + ("sdss_id and catalogid unique and synthetic; sdss4_apogee_id is the parent star's" if ids
                     else "APOGEE_ID is the parent star's"),
        "date": datetime.date.today().isoformat(),
    }
    schema = schema.with_metadata({"synthetic": "true", "starflow.provenance": json.dumps(provenance)})
    rng = np.random.default_rng(seed)
    tmp = out + ".tmp"
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for start in range(0, n, ROW_GROUP):
            rows = min(ROW_GROUP, n - start)
            chunk = source.take(rng.integers(0, source.num_rows, size=rows))
            row = np.arange(start, start + rows, dtype=np.int64)
            columns = {"sdss_id": SDSS_ID_BASE + row, "catalogid": CATALOGID_BASE + row} if ids else {}
            for name, error_name in perturbed.items():
                value = chunk[name].to_numpy().astype(np.float64)
                error = chunk[error_name].to_numpy().astype(np.float64)
                columns[name] = (value + error * rng.standard_normal(rows)).astype(np.float32)
            arrays = [pa.array(columns[f.name], f.type) if f.name in columns else chunk[f.name] for f in schema]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=ROW_GROUP)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("n", type=int, nargs="?", default=100_000)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", choices=list(LAYOUTS), default="dr19")
    a = ap.parse_args()
    write_catalogue(a.n, a.out, a.seed, a.layout)
    print(f"{a.n} synthetic stars -> {a.out}")


if __name__ == "__main__":
    main()
