use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The training-space density of a star under a model (paper section 4.5): the flow's marginal density \
of the five labels with the target integrated out, averaged over the draws (one evaluation for a method v2 star within \
the training labels' noise; v2 reads the labels in the release of SET starflow.label_release) and scaled by the number \
of samples the model saw in training. Values below the model's threshold (its manifest; the 5th percentile of its training stars) set \
LOW_DENSITY. For a star whose missing log g, [C/Fe] or [N/Fe] is integrated out (method v2), the density of its four \
other labels, with its own threshold. Null for bad input.",
    syntax_example = "starflow_density(model, teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT starflow_density('age', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)
  FROM starflow_input LIMIT 5;
```
Returns Float64."#,
    argument(name = "model", description = "Model name, a string literal: 'age', 'mass', 'age_paper' or 'mass_paper' (see `starflow models`)."),
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_flags")
)]
StarflowDensity = ("starflow_density", None, StarOutput::Density)
}
