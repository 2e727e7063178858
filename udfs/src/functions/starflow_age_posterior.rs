use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The full age posterior of a star under model 'age' (method v2, with starflow_age's settings): 250 \
probabilities (summing to 1) on the grid given by starflow_grid('age') (0 to 14 Gyr); the paper's method: \
starflow_estimate('age_paper', ...)['posterior']. Null when the star has no estimate (see the bitmask of starflow_age).",
    syntax_example = "starflow_age_posterior(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT sdss4_apogee_id, starflow_age_posterior(teff, e_teff, logg, e_logg, fe_h, e_fe_h,
                                                  c_fe, e_c_fe, n_fe, e_n_fe) AS p
  FROM starflow_input LIMIT 5;
```
Returns List<Float64> of 250 values."#,
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_grid"),
    related_udf(name = "starflow_age")
)]
StarflowAgePosterior = ("starflow_age_posterior", Some("age"), StarOutput::Posterior)
}
