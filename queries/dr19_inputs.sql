-- StarFlow inputs from an SDSS DR19 astraAllStarASPCAP file (HDU 2, lower-case names), local or s3://.
-- DR19 has no [C/Fe] or [N/Fe] columns: they are [C/H] - [Fe/H] and [N/H] - [Fe/H], errors added in quadrature
-- (docs/METHOD.md, "Inputs"). Bad stars are kept here; queries exclude them with WHERE NOT flag_bad.
-- A missing value is null or NaN in DR19 (no sentinel number): either makes a star BAD_INPUT (or, for a missing
-- log g, [C/Fe] or [N/Fe] alone, LABEL_MARGINALISED).
-- Defines: input = the Parquet file, directory or glob (`starflow --input` and `starflow catalog` define it);
-- keep = extra input columns to carry, `, "col" AS "keep:col"` each (`starflow catalog --keep`; default none).
-- The labels are DR19's: method v2 models move them onto their training release (DR17) with DR19's offsets and
-- systematics (a session setting; a later SET starflow.label_release overrides it).
SET starflow.label_release = 'dr19';

CREATE VIEW starflow_input AS
SELECT
    sdss_id,
    sdss4_apogee_id,
    catalogid,
    teff, e_teff,
    logg, e_logg,
    fe_h, e_fe_h,
    c_h - fe_h AS c_fe, sqrt(e_c_h * e_c_h + e_fe_h * e_fe_h) AS e_c_fe,
    n_h - fe_h AS n_fe, sqrt(e_n_h * e_n_h + e_fe_h * e_fe_h) AS e_n_fe,
    flag_bad
    ${keep:-}
FROM '${input}';
