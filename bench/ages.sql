-- The age half of queries/ages_masses.sql (bench/run.py --models age): one flow per star instead of two.
-- Defines: age_model (default age: method v2; age_paper: the paper's method).
SELECT
    sdss_id,
    a['value'] AS age, a['e_p'] AS e_p_age, a['e_n'] AS e_n_age,
    a['training_density'] AS age_training_density, a['bitmask'] AS age_bitmask
FROM (
    SELECT sdss_id, starflow_estimate('${age_model:-age}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS a
    FROM starflow_input
    WHERE NOT flag_bad
);
