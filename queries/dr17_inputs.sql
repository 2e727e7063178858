-- StarFlow inputs from an SDSS DR17 allStar file (upper-case names), local or s3://.
-- The paper's BAD-STAR exclusion is ASPCAPFLAG bit 23 (STAR_BAD).
-- allStar writes -9999 for a missing value: it becomes null here, so such a star is BAD_INPUT (or, for a missing
-- log g, [C/Fe] or [N/Fe] alone, LABEL_MARGINALISED) instead of a star far outside the training data.
-- Defines: input = the Parquet file, directory or glob (`starflow --input` and `starflow catalog` define it);
-- keep = extra input columns to carry, `, "COL" AS "keep:COL"` each (`starflow catalog --keep`; default none).
-- The labels are DR17's, the release the models were trained on: method v2 models use them with no offsets and draw
-- only for errors beyond the training labels' noise (a session setting; a later SET starflow.label_release overrides it).
SET starflow.label_release = 'dr17';

CREATE VIEW starflow_input AS
SELECT
    CAST(NULL AS BIGINT) AS sdss_id,
    "APOGEE_ID" AS sdss4_apogee_id,
    CAST(NULL AS BIGINT) AS catalogid,
    nullif("TEFF", -9999) AS teff, nullif("TEFF_ERR", -9999) AS e_teff,
    nullif("LOGG", -9999) AS logg, nullif("LOGG_ERR", -9999) AS e_logg,
    nullif("FE_H", -9999) AS fe_h, nullif("FE_H_ERR", -9999) AS e_fe_h,
    nullif("C_FE", -9999) AS c_fe, nullif("C_FE_ERR", -9999) AS e_c_fe,
    nullif("N_FE", -9999) AS n_fe, nullif("N_FE_ERR", -9999) AS e_n_fe,
    ("ASPCAPFLAG" & 8388608) <> 0 AS flag_bad
    ${keep:-}
FROM '${input}';
