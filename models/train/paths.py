"""Where the repository's reference tables are, and how provenance names and hashes data files: the one place the
Python scripts take data paths from.

The tables live in data/reference/ (provenance in its READMEs); the names below are relative to that folder, so
`--data`/`--data-dir` may point at any folder with the same layout.
"""
import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "data" / "reference"

JOINED = "derived/apokasc3_apoor_gold_joined.csv"  # APOKASC-3 x DR17 labels, seismic ages/masses: training + figures
HASSELQUIST = "anders2023_xgboost_inputs/Hasselquist2020_CN_ages.csv"  # published [C/N] ages, for the figures
MADE = "made_das2019/Vrard_APOKASC_TGAS_DR14_supp_seismo_masses.csv"  # APOGEE DR14 labels of APOKASC stars: releases
APOKASC2_DR16 = "apokasc2_astronn/APOKASC2.csv"  # APOGEE DR16 labels of APOKASC-2 stars: label releases
DR19_COLUMNS = "sdss_dr19_datamodel/astraAllStarASPCAP_DR19_hdu2_columns.csv"  # DR19 names/types, examples/data


def recorded(path) -> str:
    """How provenance records name a data file: its path in the repository, else the path as given."""
    path = Path(path).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
