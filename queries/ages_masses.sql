-- Ages and masses of every good star of `starflow_input` (create it with dr19_inputs.sql or dr17_inputs.sql first).
-- Each model's call is evaluated once per star even though several of its fields are selected.
SELECT
    sdss_id,
    sdss4_apogee_id,
    catalogid,
    a['age'] AS age, a['e_p_age'] AS e_p_age, a['e_n_age'] AS e_n_age,
    a['training_density'] AS age_training_density, a['bitmask'] AS age_bitmask,
    m['mass'] AS mass, m['e_p_mass'] AS e_p_mass, m['e_n_mass'] AS e_n_mass,
    m['training_density'] AS mass_training_density, m['bitmask'] AS mass_bitmask
FROM (
    SELECT
        sdss_id, sdss4_apogee_id, catalogid,
        starflow_age(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS a,
        starflow_mass(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS m
    FROM starflow_input
    WHERE NOT flag_bad
);
