use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The full mass posterior of a star under model 'mass' (method v2, with starflow_age's settings): 250 \
probabilities (summing to 1) on the linear grid given by starflow_grid('mass') (0 to 3 Msun; the point M = 0 has \
probability 0). Null when the star has no estimate. The paper's method: starflow_estimate('mass_paper', ...)['posterior'].",
    syntax_example = "starflow_mass_posterior(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT starflow_mass_posterior(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)
  FROM starflow_input LIMIT 5;
```
Returns List<Float64> of 250 values."#,
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_grid"),
    related_udf(name = "starflow_mass")
)]
StarflowMassPosterior = ("starflow_mass_posterior", Some("mass"), StarOutput::Posterior)
}
