"""FITS test files written by astropy, with the values a reader must find in them.

    python tests/data/fits/make_fits.py OUT_DIR [--bundled BUNDLED.parquet] [--only types hdus large huge]

OUT_DIR/types.fits     one BINTABLE with every TFORM (L X B I J K A E D C M, P and Q arrays), repeat counts and TDIM,
                       TSCAL/TZERO (linear and the signed/unsigned integer conventions), TNULL, NaN/inf, TUNIT and
                       column comments (TCOMMn and TTYPEn comments); types.json holds its columns, row by row
                       (null for a null; floats that JSON cannot hold as "nan", "inf", "-inf"; complex as {re, im};
                       arrays outermost first, as numpy gives them).
OUT_DIR/types.fits.gz  the same, gzipped.
OUT_DIR/hdus.fits      an image HDU, then binary tables 'FIRST' (2 rows) and 'SECOND' (3 rows).
OUT_DIR/wide.fits      8 rows of an `id` (J) and a 300,000-element `spectrum` (E): rows of 1.2 MB, wider than the gap
                       that makes separate ranged reads per row pay.
OUT_DIR/long.fits      1,500,000 rows of `id` (K, the row number) and `x` (D, id / 2): 24 MB of rows.
OUT_DIR/huge.fits      (only if asked for) 25,000,000 rows of zeros (id K, x D): 400 MB, sparse; and gzipped.
(+ .gz, huge-wide.fits: 4,000 rows of 100 kB, also 400 MB of zeros)
OUT_DIR/bundled.fits   the bundled stars (a DR19 astraAllStarASPCAP Parquet file) as astropy writes them to FITS
(+ .gz)                (null integers -> TNULL, null strings -> empty), if --bundled gives the Parquet path.
"""
import argparse
import gzip
import json
import math
import os
import shutil
import sys

import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, Table

ROWS = 5


def encode(v):
    """One value as types.json holds it."""
    if v is None:
        return None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [encode(x) for x in v]
    if isinstance(v, (complex, np.complexfloating)):
        return {"re": encode(float(v.real)), "im": encode(float(v.imag))}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else ("nan" if math.isnan(f) else ("inf" if f > 0 else "-inf"))
    return v


def types(out):
    """Every TFORM, with the values each row must read as (None: null)."""
    r = np.arange(ROWS)
    cols, expect = [], {}

    def add(column, values):
        cols.append(column)
        expect[column.name] = [encode(v) for v in values]

    logical = np.array([True, False, True, True, False])
    add(fits.Column(name="flag", format="L", array=logical), [True, False, None, True, False])  # row 2 patched to 0
    bits = np.array([[(i + j) % 3 == 0 for j in range(11)] for i in range(ROWS)])
    add(fits.Column(name="bits", format="11X", array=bits), [list(b) for b in bits])
    add(fits.Column(name="byte", format="B", array=np.array([0, 1, 127, 200, 255], dtype=np.uint8)), [0, 1, 127, 200, 255])
    add(fits.Column(name="byte_null", format="B", null=255, array=np.array([0, 255, 3, 4, 255], dtype=np.uint8)),
        [0, None, 3, 4, None])
    sbyte = np.array([-128, -1, 0, 1, 127], dtype=np.int8)
    add(fits.Column(name="sbyte", format="B", bzero=-128, array=sbyte), sbyte.tolist())
    add(fits.Column(name="short", format="I", null=-32768, array=np.array([-32768, -2, 0, 3, 32767], dtype=np.int16)),
        [None, -2, 0, 3, 32767])
    ushort = np.array([0, 1, 32768, 40000, 65535], dtype=np.uint16)
    add(fits.Column(name="ushort", format="I", bzero=32768, array=ushort), ushort.tolist())
    add(fits.Column(name="int", format="J", null=-999, array=np.array([-999, -2**31, 2**31 - 1, 0, 42], dtype=np.int32)),
        [None, -2**31, 2**31 - 1, 0, 42])
    uint = np.array([0, 1, 2**31, 3_000_000_000, 2**32 - 1], dtype=np.uint32)
    add(fits.Column(name="uint", format="J", bzero=2**31, array=uint), uint.tolist())
    add(fits.Column(name="long", format="K", null=-1, array=np.array([-1, -2**63, 2**63 - 1, 0, 7], dtype=np.int64)),
        [None, -2**63, 2**63 - 1, 0, 7])
    ulong = np.array([0, 1, 2**63, 2**63 + 12345, 2**64 - 1], dtype=np.uint64)
    add(fits.Column(name="ulong", format="K", bzero=2**63, array=ulong), ulong.tolist())
    real = np.array([1.5, np.nan, -np.inf, 3.4e38, -0.0], dtype=np.float32)
    add(fits.Column(name="real", format="E", unit="km/s", array=real), real)
    double = np.array([np.pi, np.nan, np.inf, 1e-300, -2.5])
    add(fits.Column(name="double", format="D", unit="Gyr", array=double), double)
    # Scaled integers read as doubles: physical = TZERO + TSCAL x stored. Written as stored integers and scaled in
    # the header afterwards (astropy 8's own write of scaled integer columns fails).
    stored = np.array([0, 1, -20, -31, 20], dtype=np.int16)
    add(fits.Column(name="scaled", format="I", array=stored), 10.0 + 0.5 * stored)
    stored_null = np.array([0, 4, 8, -2147483648, 16], dtype=np.int32)
    add(fits.Column(name="scaled_null", format="J", null=-2147483648, array=stored_null),
        [None if v == -2147483648 else -1.0 + 0.25 * v for v in stored_null])
    scaled_real = np.array([1.0, 2.0, np.nan, 4.0, 5.0], dtype=np.float32)
    add(fits.Column(name="scaled_real", format="E", bscale=2.0, bzero=1.0, array=scaled_real),
        [1.0 + 2.0 * ((v - 1.0) / 2.0) for v in scaled_real.astype(np.float64)])
    names = ["2M00000002+7417074", "", "trailing   ", "x", "  lead"]
    add(fits.Column(name="name", format="18A", array=np.array(names)), [n.rstrip() or None for n in names])
    words = np.array([["ab", "cde", ""], ["f", "", "ghijk"], ["", "", ""], ["lmnop", "q", "r"], ["s", "t", "u"]])
    add(fits.Column(name="words", format="15A", dim="(5,3)", array=words), [[w or None for w in row] for row in words])
    grid = (r[:, None, None] * 10 + np.arange(6).reshape(2, 3)).astype(np.float32)
    add(fits.Column(name="grid", format="6E", dim="(3,2)", array=grid), grid)
    longs = (r[:, None] * 1000 + np.arange(4)).astype(np.int64)
    add(fits.Column(name="longs", format="4K", array=longs), longs)
    add(fits.Column(name="cplx", format="C", array=(r + 1j * (r - 2)).astype(np.complex64)),
        (r + 1j * (r - 2)).astype(np.complex64))
    dcplx = (r * 0.5 - 1j * r).astype(np.complex128)
    add(fits.Column(name="dcplx", format="2M", array=np.stack([dcplx, dcplx.conj()], 1)), np.stack([dcplx, dcplx.conj()], 1))
    var = [np.arange(i, dtype=np.int32) * (i + 1) for i in range(ROWS)]
    add(fits.Column(name="var_int", format="PJ()", array=np.array(var, dtype=object)), var)
    var_d = [np.linspace(0, 1, (i * 2) % 5) for i in range(ROWS)]
    add(fits.Column(name="var_double", format="QD()", array=np.array(var_d, dtype=object)), var_d)
    var_s = ["", "a", "bc", "def", "ghij"]
    add(fits.Column(name="var_text", format="PA()", array=np.array(var_s, dtype=object)), [s or None for s in var_s])

    hdu = fits.BinTableHDU.from_columns(cols, name="TYPES")
    n_of = {c.name: i + 1 for i, c in enumerate(cols)}
    hdu.header["TCOMM" + str(n_of["real"])] = "Radial velocity (TCOMM)"
    hdu.header.comments["TTYPE" + str(n_of["double"])] = "Age from the TTYPE comment"
    path = os.path.join(out, "types.fits")
    hdu.writeto(path, overwrite=True)

    with fits.open(path, mode="update") as hdul:
        for name, scale, zero in [("scaled", 0.5, 10.0), ("scaled_null", 0.25, -1.0)]:
            hdul[1].header.insert(f"TFORM{n_of[name]}", (f"TSCAL{n_of[name]}", scale), after=True)
            hdul[1].header.insert(f"TSCAL{n_of[name]}", (f"TZERO{n_of[name]}", zero), after=True)
        data_at = hdul[1].fileinfo()["datLoc"]
    # A null logical (a 0 byte), which astropy does not write by itself: 'flag' is the first field of row 2.
    with fits.open(path) as hdul:
        row_len = hdul[1].header["NAXIS1"]
        assert hdul[1].header["TSCAL" + str(n_of["scaled"])] == 0.5 and hdul[1].data["scaled"][3] == 10.0 - 15.5
    with open(path, "r+b") as f:
        f.seek(data_at + 2 * row_len)
        f.write(b"\0")

    with open(os.path.join(out, "types.json"), "w") as f:
        json.dump({"rows": ROWS, "columns": expect,
                   "units": {"real": "km/s", "double": "Gyr"},
                   "descriptions": {"real": "Radial velocity (TCOMM)", "double": "Age from the TTYPE comment"}}, f)
    gz(path)


def hdus(out):
    image = fits.ImageHDU(np.zeros((3, 4), dtype=np.float32), name="IMAGE")
    first = fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=np.array([1, 2]))], name="FIRST")
    second = fits.BinTableHDU.from_columns([fits.Column(name="b", format="D", array=np.array([0.5, 1.5, 2.5]))], name="SECOND")
    fits.HDUList([fits.PrimaryHDU(), image, first, second]).writeto(os.path.join(out, "hdus.fits"), overwrite=True)


def large(out):
    """Files for the tests that count the bytes a query fetches from object storage."""
    ids = np.arange(8, dtype=np.int32)
    spectra = np.broadcast_to(np.arange(300_000, dtype=np.float32), (8, 300_000)) + ids[:, None]
    fits.BinTableHDU.from_columns([fits.Column(name="id", format="J", array=ids),
                                   fits.Column(name="spectrum", format="300000E", array=spectra)]).writeto(
        os.path.join(out, "wide.fits"), overwrite=True)
    rows = np.arange(1_500_000, dtype=np.int64)
    fits.BinTableHDU.from_columns([fits.Column(name="id", format="K", array=rows),
                                   fits.Column(name="x", format="D", array=rows / 2)]).writeto(
        os.path.join(out, "long.fits"), overwrite=True)


def huge(out):
    """400 MB tables that take no disk, for the test of bounded memory: `huge.fits`, 25,000,000 rows of `id` (K) and
    `x` (D), gzipped too (1.7 MB); `huge-wide.fits`, 4,000 rows of `id` (J) and a 25,000-element `spectrum` (E), rows
    of 100 kB. Every value is 0."""
    sparse(os.path.join(out, "huge.fits"), 25_000_000, [fits.Column(name="id", format="K", array=np.zeros(1, np.int64)),
                                                        fits.Column(name="x", format="D", array=np.zeros(1))])
    with open(os.path.join(out, "huge.fits"), "rb") as src, gzip.open(os.path.join(out, "huge.fits.gz"), "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 16 << 20)
    sparse(os.path.join(out, "huge-wide.fits"), 4_000, [fits.Column(name="id", format="J", array=np.zeros(1, np.int32)),
                                                       fits.Column(name="spectrum", format="25000E",
                                                                   array=np.zeros((1, 25_000), np.float32))])


def sparse(path, rows, columns):
    """astropy writes `columns` (one row of zeros); NAXIS2 is then set to `rows` and the file extended (sparse: no
    disk) to hold them."""
    fits.BinTableHDU.from_columns(columns).writeto(path, overwrite=True)
    with fits.open(path) as hdul:
        header_at, data_at = hdul[1].fileinfo()["hdrLoc"], hdul[1].fileinfo()["datLoc"]
    with open(path, "r+b") as f:
        f.seek(header_at)
        header = f.read(data_at - header_at)
        at = header.index(b"NAXIS2  = ")
        f.seek(header_at + at)
        f.write(f"NAXIS2  = {rows:>20}".ljust(80).encode())
        row_len = int(header[header.index(b"NAXIS1  = ") + 10:][:20])
        f.truncate(data_at + -(-rows * row_len // 2880) * 2880)


def bundled(out, parquet):
    """The bundled stars through astropy: its Parquet reader fails on null strings, so build the table from pyarrow
    with the nulls as masks, as a user converting the file would."""
    import pyarrow.parquet as pq

    t = pq.read_table(parquet)
    table = Table()
    for name in t.column_names:
        col = t[name]
        mask = col.is_null().to_numpy(zero_copy_only=False)
        if col.type == "string":
            values = np.array([v or "" for v in col.to_pylist()])
        else:
            values = col.fill_null(0).to_numpy() if col.null_count else col.to_numpy()
        table[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    path = os.path.join(out, "bundled.fits")
    table.write(path, overwrite=True)
    gz(path)


def gz(path):
    with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)


FILES = {"types": types, "hdus": hdus, "large": large, "huge": huge}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--bundled", metavar="PARQUET", help="also write bundled.fits(.gz) from this Parquet file")
    ap.add_argument("--only", nargs="+", choices=FILES, default=["types", "hdus", "large"],
                    help="the files to write (default: types hdus large)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.only:
        FILES[name](args.out_dir)
    if args.bundled:
        bundled(args.out_dir, args.bundled)
