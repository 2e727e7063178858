-- Ages and masses of every good star of `starflow_input` (`starflow --input FILE run ages_masses.sql`, or run
-- dr19_inputs.sql or dr17_inputs.sql first).
-- Each model's call is evaluated once per star even though several of its fields are selected.
-- Defines: age_model, mass_model = the models (default age, mass: method v2; age_paper, mass_paper: the paper's).
SELECT
    sdss_id,
    sdss4_apogee_id,
    catalogid,
    a['value'] AS age, a['e_p'] AS e_p_age, a['e_n'] AS e_n_age,
    a['median'] AS age_median, a['p16'] AS age_p16, a['p84'] AS age_p84,
    a['training_density'] AS age_training_density, a['bitmask'] AS age_bitmask,
    m['value'] AS mass, m['e_p'] AS e_p_mass, m['e_n'] AS e_n_mass,
    m['median'] AS mass_median, m['p16'] AS mass_p16, m['p84'] AS mass_p84,
    m['training_density'] AS mass_training_density, m['bitmask'] AS mass_bitmask
FROM (
    SELECT
        sdss_id, sdss4_apogee_id, catalogid,
        starflow_estimate('${age_model:-age}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS a,
        starflow_estimate('${mass_model:-mass}', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS m
    FROM starflow_input
    WHERE NOT flag_bad
);
