"""The reference tables of data/reference/: check them against their provenance READMEs, or make them again.

    python scripts/reference_data.py check              (exit status 0 = pass)
    python scripts/reference_data.py make SOURCE_DIR

check: every folder under data/reference has a README.md listed in data/reference/README.md; every file of a folder
is in its README's file table (and every table entry exists) with the right sha256, size, row count and column count;
every column of every table is named in the README (`name` in backticks). Standard library only.

make: rewrites the tables from SOURCE_DIR, the data collection they were copied from (same folder layout; see
data/reference/README.md), keeping all rows and the columns listed in TABLES below, values copied as text (padding
stripped); then rewrites the file table of each folder's README (between the `<!-- files -->` markers).
"""
from __future__ import annotations

import csv
import math
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "train"))
from paths import REFERENCE, sha256_file as sha256  # noqa: E402

# Every file of data/reference: None = copied byte for byte, else the columns kept, in this order.
DR14_LABELS = ["location_id", "ra", "dec", "teff", "teff_err", "logg", "logg_err", "m_h", "m_h_err", "alpha_m",
               "alpha_m_err"]
WARFIELD = ["RAdeg", "DEdeg", "Teff", "Teff-u", "e_Teff", "logg", "logg-u", "e_logg", "[Fe/H]", "e_[Fe/H]", "[a/M]",
            "e_[a/M]", "aFlag", "Mstar", "e_Mstar", "logg-seis"]
WARFIELD_AGES = ["Age", "e_Age", "E_Age"]
TABLES: dict[str, list[str] | None] = {
    # whole: its sha256 is the one the models' manifests and examples/data record
    "derived/apokasc3_apoor_gold_joined.csv": None,
    "anders2023_xgboost_inputs/Hasselquist2020_CN_ages.csv": ["ID", "logAge", "e_logAge"],
    "made_das2019/Vrard_APOKASC_TGAS_DR14_supp_seismo_masses.csv":
        DR14_LABELS + ["[C/M]", "err_[C/M]", "[N/M]", "err_[N/M]", "[Fe/H]", "err_[Fe/H]", "mass", "mass_error"],
    "made_das2019/Vrard_APOKASC_TGAS_DR14_supp_seismo_masses_iso_ann.csv":
        DR14_LABELS + ["[C/M]", "[C/M]_err", "[N/M]", "[N/M]_err", "mass", "mass_error", "iso_mu_log10age",
                       "iso_sig_log10age", "isonomass_mu_log10age", "isonomass_sig_log10age"],
    "apok2_warfield2024/t1_apok2_rgb_ages.csv": ["EPIC", "APOGEE"] + WARFIELD + ["e_logg-seis"] + WARFIELD_AGES,
    # t2's published e_logg-seis holds 54..212, not a log g error: left out (see the README)
    "apok2_warfield2024/t2_apokasc2_rgb_ages.csv": ["KIC", "APOGEE"] + WARFIELD + WARFIELD_AGES,
    "apokasc2_astronn/APOKASC2.csv": ["APOGEE_ID", "KIC", "ES", "TEFF", "TEFF_ERR", "LOGG", "LOGG_ERR", "FE_H",
                                      "FE_H_ERR", "MG_H", "MG_H_ERR", "Mcorr", "Mcorr_err", "Age", "Age_err"],
    "apokasc2_table5/apokasc2_table5.csv": ["_RAJ2000", "_DEJ2000", "KIC", "2MASS", "Teff", "FeH", "AFe", "ES",
                                            "M(cor)", "s_M(cor)", "logg(seis)", "s_logg(seis)", "LogAge", "Notes"],
    "occam/occam_cluster-DR16.csv": None,
    "occam/occam_cluster-DR16.fits": None,
    "occam/occam_member-DR16.csv": None,
    "occam/occam_member-DR16.fits": None,
    "occam/occam_dr19_cluster_ages_subset_TRANSCRIBED.csv": None,
    "sdss_dr19_datamodel/astraAllStarASPCAP_DR19_hdu2_columns.csv": None,
}

BEGIN, END = "<!-- files -->", "<!-- /files -->"
HEADER = ["| file | rows | columns | bytes | sha256 |", "|---|---|---|---|---|"]
ROW = re.compile(r"^\| `([^`]+)` \| ([\d,]+) \| (\d+) \| ([\d,]+) \| `([0-9a-f]{64})` \|$")
FITS_BLOCK = 2880


def fits_table(path: Path) -> tuple[int, list[str]]:
    """Rows and column names of the first binary table of a FITS file (its second HDU), from the headers alone."""
    with open(path, "rb") as f:
        data = f.read()
    pos, headers = 0, []
    while len(headers) < 2 and pos < len(data):
        cards = {}
        while True:
            block = data[pos:pos + FITS_BLOCK]
            pos += FITS_BLOCK
            for i in range(0, FITS_BLOCK, 80):
                key, value = block[i:i + 8].decode("ascii").strip(), block[i + 10:i + 80].decode("ascii").strip()
                # 'a string' (may hold a /) or a number, then an optional / comment
                text = value[1:].split("'")[0].strip() if value.startswith("'") else value.split("/")[0].strip()
                cards.setdefault(key, text)
            if "END" in cards or pos >= len(data):
                break
        headers.append(cards)
        naxes = [int(cards.get(f"NAXIS{i}", 0)) for i in range(1, int(cards.get("NAXIS", 0)) + 1)]
        size = (int(cards.get("PCOUNT", 0)) + (math.prod(naxes) if naxes else 0)) * abs(int(cards["BITPIX"])) // 8
        pos += -(-size // FITS_BLOCK) * FITS_BLOCK
    table = headers[1]
    if table.get("XTENSION") != "BINTABLE":
        raise SystemExit(f"{path}: the second HDU is not a binary table")
    return int(table["NAXIS2"]), [table[f"TTYPE{i}"] for i in range(1, int(table["TFIELDS"]) + 1)]


def table_shape(path: Path) -> tuple[int, list[str]]:
    """Rows and column names of a CSV (header row first) or FITS table."""
    if path.suffix == ".fits":
        return fits_table(path)
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        return sum(1 for _ in rows), header


def file_row(path: Path) -> str:
    rows, columns = table_shape(path)
    return f"| `{path.name}` | {rows:,} | {len(columns)} | {path.stat().st_size:,} | `{sha256(path)}` |"


def trim(src: Path, dest: Path, columns: list[str]):
    with open(src, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        missing = [c for c in columns if c not in header]
        if missing:
            raise SystemExit(f"{src}: no columns {missing}")
        keep = [header.index(c) for c in columns]
        with open(dest, "w", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([row[i].strip() for i in keep] for row in reader)


def readme_block(readme: Path) -> tuple[str, str, str]:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} file table")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    return head, block, tail


def make(source: Path):
    folders: dict[str, list[Path]] = {}
    for rel, columns in TABLES.items():
        src, dest = source / rel, REFERENCE / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if columns is None:
            shutil.copyfile(src, dest)
        else:
            trim(src, dest, columns)
        folders.setdefault(dest.parent.name, []).append(dest)
    for folder, files in folders.items():
        readme = REFERENCE / folder / "README.md"
        head, _, tail = readme_block(readme)
        rows = HEADER + [file_row(p) for p in sorted(files)]
        readme.write_text(head + BEGIN + "\n" + "\n".join(rows) + "\n" + END + tail)
        print(f"wrote {len(files)} files and the file table of {readme.relative_to(REFERENCE.parent.parent)}")


def check() -> tuple[list[str], int]:
    """Problems found, and the number of files checked."""
    errors, checked = [], 0
    index = (REFERENCE / "README.md").read_text()
    for folder in sorted(p for p in REFERENCE.iterdir() if p.is_dir()):
        readme = folder / "README.md"
        name = folder.name
        if f"`{name}/`" not in index:
            errors.append(f"{name}/ is not listed in data/reference/README.md")
        if not readme.is_file():
            errors.append(f"{name}/ has no README.md")
            continue
        text = readme.read_text()
        _, block, _ = readme_block(readme)
        listed = {}
        for line in block.strip().splitlines()[len(HEADER):]:
            m = ROW.match(line)
            if not m:
                errors.append(f"{name}/README.md: unreadable file-table row: {line}")
                continue
            listed[m[1]] = (int(m[2].replace(",", "")), int(m[3]), int(m[4].replace(",", "")), m[5])
        present = {p.name for p in folder.iterdir() if p.name != "README.md"}
        errors += [f"{name}/{f}: not in {name}/README.md" for f in sorted(present - set(listed))]
        errors += [f"{name}/{f}: listed in {name}/README.md but missing" for f in sorted(set(listed) - present)]
        for f in sorted(present & set(listed)):
            checked += 1
            path = folder / f
            rows, columns = table_shape(path)
            actual = (rows, len(columns), path.stat().st_size, sha256(path))
            if actual != listed[f]:
                errors.append(f"{name}/{f}: (rows, columns, bytes, sha256) are {actual}, its README says {listed[f]}")
            undocumented = [c for c in columns if f"`{c}`" not in text]
            if undocumented:
                errors.append(f"{name}/{f}: columns not described in {name}/README.md: {undocumented}")
    return errors, checked


def main() -> int:
    if sys.argv[1:2] == ["check"] and len(sys.argv) == 2:
        errors, checked = check()
        for e in errors:
            print(f"FAIL: {e}")
        print("FAIL" if errors else f"PASS: reference data ({checked} files match their READMEs)")
        return 1 if errors else 0
    if sys.argv[1:2] == ["make"] and len(sys.argv) == 3:
        make(Path(sys.argv[2]))
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
