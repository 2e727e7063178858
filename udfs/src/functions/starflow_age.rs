use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "Stellar age from the StarFlow age model (model 'age', method v2): the maximum of the age posterior on \
a 250-point grid from 0 to 14 Gyr (the VAC's ML estimate), its 1-sigma offsets, the posterior's median and 16th/84th \
percentiles, the flow's training-space density of the star's labels and the quality BITMASK (1 LOW_DENSITY, \
2 GRID_EDGE, 4 BAD_INPUT, 8 OUT_OF_RANGE, 16 MULTIMODAL, 32 CN_ATYPICAL, 64 LABEL_MARGINALISED). e_p_age >= 0 and \
e_n_age <= 0 are signed offsets from age; the median is the least biased point estimate (docs/METHOD.md). A row with a \
null, NaN or infinite label or error, or an error <= 0, returns null numbers with bitmask 4, except one whose only \
missing label is log g, [C/Fe] or [N/Fe] (null or NaN; its error is ignored): that label is integrated out over its \
training range, a wider posterior flagged 64. CN_ATYPICAL: the measured [C/Fe], [N/Fe] are atypical for the star's \
other labels (starflow_cn_posterior; SET starflow.cn_flag = false skips that plane, 4,010 flow rows per star, and \
never sets the bit). The labels' data release: SET starflow.label_release (default: the \
model's, dr19; the input views set it); a star is drawn (SET starflow.draws, default 50) only where its errors exceed the \
training labels' noise, else its labels are evaluated once; seed: SET starflow.seed. The paper's method: \
starflow_estimate('age_paper', ...).",
    syntax_example = "starflow_age(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT sdss4_apogee_id, a['age'], a['e_p_age'], a['e_n_age'], a['age_median'], a['age_p16'], a['age_p84'],
         a['training_density_percentile'], a['bitmask'], starflow_good(a['bitmask']) AS good
  FROM (SELECT sdss4_apogee_id,
               starflow_age(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS a
        FROM starflow_input WHERE NOT flag_bad LIMIT 5);
```
Returns Struct {age: Float64 [Gyr], e_p_age, e_n_age, age_median, age_p16, age_p84, training_density: Float64,
training_density_percentile: Float64 [%], bitmask: Int64}."#,
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_mass"),
    related_udf(name = "starflow_age_posterior")
)]
StarflowAge = ("starflow_age", Some("age"), StarOutput::Summary("age"))
}
