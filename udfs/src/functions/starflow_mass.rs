use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "Stellar mass from the StarFlow mass model (model 'mass', method v2; a flow over log10 M): the maximum \
of the mass posterior on a 250-point grid from 0 to 3 Msun (with the Jacobian 1/(M ln 10)), its signed 1-sigma offsets, \
the posterior's median and 16th/84th percentiles, the training-space density and the quality BITMASK, with the \
settings of starflow_age. The paper's method: starflow_estimate('mass_paper', ...).",
    syntax_example = "starflow_mass(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT m['mass'], m['e_p_mass'], m['e_n_mass'], m['mass_median'], m['mass_p16'], m['mass_p84']
  FROM (SELECT starflow_mass(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS m
        FROM starflow_input LIMIT 5);
```
Returns Struct {mass: Float64 [Msun], e_p_mass, e_n_mass, mass_median, mass_p16, mass_p84, training_density: Float64,
training_density_percentile: Float64 [%], bitmask: Int64}."#,
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_age"),
    related_udf(name = "starflow_mass_posterior")
)]
StarflowMass = ("starflow_mass", Some("mass"), StarOutput::Summary("mass"))
}
