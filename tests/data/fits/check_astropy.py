"""astropy reads starflow's Parquet output with its units and descriptions, both as plain Parquet (astropy's
`table_meta_yaml`) and as VOParquet (the VOTable header TOPCAT reads). Called by tests/fits.rs:

    python check_astropy.py SELECTED.parquet SELECTED.fits CATALOGUE_DIR

SELECTED holds `name, real, double, ulong` of make_fits.py's types.fits, written by starflow as Parquet and as FITS.
Exits 1 with the failures listed."""
import sys
import warnings

import astropy.units as u
from astropy.table import Table

failures = []


def check(what, ok):
    if not ok:
        failures.append(what)


def main(selected, selected_fits, catalogue):
    warnings.simplefilter("error")  # astropy warns when it has to guess (e.g. a string length): that is a failure
    t = Table.read(selected_fits)
    check(f"fits: units {t['real'].unit!r} {t['double'].unit!r}", t["real"].unit == u.km / u.s and t["double"].unit == u.Gyr)
    check(f"fits: ulong {t['ulong'][4]!r}", int(t["ulong"][4]) == 2**64 - 1 and t["ulong"].dtype.kind == "u")
    check(f"fits: name {t['name'][0]!r}", t["name"][0] == "2M00000002+7417074")
    for fmt in ["parquet", "parquet.votable"]:
        t = Table.read(selected, format=fmt)
        check(f"{fmt}: real unit {t['real'].unit!r}", t["real"].unit == u.km / u.s)
        check(f"{fmt}: double unit {t['double'].unit!r}", t["double"].unit == u.Gyr)
        check(f"{fmt}: real description {t['real'].description!r}", t["real"].description == "Radial velocity (TCOMM)")
        check(f"{fmt}: double description {t['double'].description!r}", t["double"].description == "Age from the TTYPE comment")
        # VOTable has no unsigned 64-bit type (astropy refuses to write one): its VOParquet reader stacks the header's
        # `long` with the data's uint64 into float64. Plain Parquet keeps it exact.
        ulong = int(t["ulong"][4]) == 2**64 - 1 if fmt == "parquet" else t["ulong"][4] == float(2**64 - 1)
        check(f"{fmt}: ulong {t['ulong'][4]!r}", ulong)
        check(f"{fmt}: name {t['name'][0]!r}", t["name"][0] == "2M00000002+7417074")

        s = Table.read(f"{catalogue}/StarFlow_summary.parquet", format=fmt)
        check(f"{fmt}: summary rows {len(s)}", len(s) == 6603)
        check(f"{fmt}: age unit {s['age'].unit!r}", s["age"].unit == u.Gyr)
        check(f"{fmt}: mass unit {s['mass'].unit!r}", s["mass"].unit == u.M_sun)
        check(f"{fmt}: age description", str(s["age"].description).startswith("Maximum-likelihood age"))
        check(f"{fmt}: ids", str(s["sdss4_apogee_id"][0]).startswith("2M"))

        for model, first in [("age", "0_00"), ("mass", "_inf")]:
            p = Table.read(f"{catalogue}/StarFlow_{model}_posterior.parquet", format=fmt)
            check(f"{fmt}: {model} posterior columns {p.colnames[:4]}",
                  len(p) == 6603 and len(p.colnames) == 3 + 250 and p.colnames[3] == first)
            check(f"{fmt}: {model} posterior description", "Posterior probability" in str(p[first].description))
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
