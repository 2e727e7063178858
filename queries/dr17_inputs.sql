-- StarFlow inputs from an SDSS DR17 allStar file (upper-case names), local or s3://.
-- The paper's BAD-STAR exclusion is ASPCAPFLAG bit 23 (STAR_BAD).
-- Defines: input = the Parquet file, directory or glob.
-- The labels are DR17's, the release the models were trained on: method v2 models use them with no offsets and draw
-- only for errors beyond the training labels' noise (a session setting; a later SET starflow.label_release overrides it).
SET starflow.label_release = 'dr17';

CREATE VIEW starflow_input AS
SELECT
    CAST(NULL AS BIGINT) AS sdss_id,
    "APOGEE_ID" AS sdss4_apogee_id,
    CAST(NULL AS BIGINT) AS catalogid,
    "TEFF" AS teff, "TEFF_ERR" AS e_teff,
    "LOGG" AS logg, "LOGG_ERR" AS e_logg,
    "FE_H" AS fe_h, "FE_H_ERR" AS e_fe_h,
    "C_FE" AS c_fe, "C_FE_ERR" AS e_c_fe,
    "N_FE" AS n_fe, "N_FE_ERR" AS e_n_fe,
    ("ASPCAPFLAG" & 8388608) <> 0 AS flag_bad
FROM '${input}';
