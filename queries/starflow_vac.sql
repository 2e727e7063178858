-- The StarFlow value-added catalogue of `starflow_input` (create it with dr19_inputs.sql or dr17_inputs.sql first):
-- one row per input row, in input order, with the summary numbers of both models and their posteriors.
-- `starflow catalog` runs this and splits the result into StarFlow_summary.parquet (every column but the posteriors),
-- StarFlow_age_posterior.parquet and StarFlow_mass_posterior.parquet (the keys and 250 grid columns each).
-- Defines: age_model, mass_model = the models (default age, mass: method v2; `starflow catalog --method paper` uses
-- age_paper, mass_paper); kept = input columns the view carries, `, "keep:col"` each (`starflow catalog --keep`).
--
-- One partition keeps the rows in input order (the catalogue is row-matched to its input); the flows still run on
-- every core, because each function call spreads its batch over the inference threads.
SET datafusion.execution.target_partitions = 1;

-- Each model is evaluated once per star (starflow_estimate carries the summary, the posterior and the C-N level; SET
-- starflow.cn_flag = false before the run skips the C-N planes). Stars that ASPCAP flags bad are not evaluated: null
-- numbers and bitmask 4 (BAD_INPUT), as for unusable labels.
-- The id is written as a plain string (DataFusion reads Parquet strings as Utf8View, which not every reader takes).
SELECT
    sdss_id,
    arrow_cast(sdss4_apogee_id, 'Utf8') AS sdss4_apogee_id,
    catalogid,
    a['value'] AS age, a['e_p'] AS e_p_age, a['e_n'] AS e_n_age,
    m['value'] AS mass, m['e_p'] AS e_p_mass, m['e_n'] AS e_n_mass,
    a['training_density'] AS training_density, coalesce(a['bitmask'], 4) AS bitmask,
    m['training_density'] AS mass_training_density, coalesce(m['bitmask'], 4) AS mass_bitmask,
    a['training_density_percentile'] AS training_density_percentile,
    m['training_density_percentile'] AS mass_training_density_percentile,
    a['median'] AS age_median, a['p16'] AS age_p16, a['p84'] AS age_p84,
    m['median'] AS mass_median, m['p16'] AS mass_p16, m['p84'] AS mass_p84,
    a['cn_level'] AS age_cn_level, m['cn_level'] AS mass_cn_level,
    a['posterior'] AS age_posterior,
    m['posterior'] AS mass_posterior
    ${kept:-}
FROM (
    SELECT
        sdss_id, sdss4_apogee_id, catalogid
        ${kept:-},
        CASE WHEN flag_bad THEN NULL
             ELSE starflow_estimate('${age_model:-age}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) END AS a,
        CASE WHEN flag_bad THEN NULL
             ELSE starflow_estimate('${mass_model:-mass}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) END AS m
    FROM starflow_input
);
