use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "Everything one evaluation of a model gives for a star, in one struct: the maximum of the posterior \
(value), its signed 1-sigma offsets (e_p >= 0, e_n <= 0), the posterior's median and 16th/84th percentiles, the \
training-space density, the quality BITMASK, the posterior itself on the model's grid (see starflow_grid) and, for a \
method v2 model, the level of the star's measured [C/Fe], [N/Fe] in its C-N plane (cn_level; see \
starflow_cn_posterior; null with SET starflow.cn_flag = false or a missing label). Any model: 'age' and 'mass' (method v2), 'age_paper' and 'mass_paper' (the paper's method; see `starflow models`). Use it \
when a query needs both the summary and the posterior (the StarFlow catalogue does): the flow runs once per star \
instead of once per function. Bad input gives null numbers and a null posterior with bitmask 4 (BAD_INPUT).",
    syntax_example = "starflow_estimate(model, teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT e['value'] AS age, e['e_p'], e['e_n'], e['median'], e['p16'], e['p84'], e['bitmask'], e['posterior']
  FROM (SELECT starflow_estimate('age', teff, e_teff, logg, e_logg, fe_h, e_fe_h,
                                 c_fe, e_c_fe, n_fe, e_n_fe) AS e FROM starflow_input LIMIT 5);
```
Returns Struct {value, e_p, e_n, median, p16, p84, training_density, training_density_percentile: Float64,
bitmask: Int64, posterior: List(Float64),
cn_level: Float64}."#,
    argument(
        name = "model",
        description = "Model name, a string literal: 'age', 'mass', 'age_paper' or 'mass_paper' (see `starflow models`)."
    ),
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_age"),
    related_udf(name = "starflow_age_posterior"),
    related_udf(name = "starflow_grid")
)]
StarflowEstimate = ("starflow_estimate", None, StarOutput::Estimate)
}
