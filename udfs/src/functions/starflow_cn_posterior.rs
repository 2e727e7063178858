use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The [C/Fe]-[N/Fe] plane of a star (docs/METHOD.md sec. 9; paper sec. 4.4 and 6.2): how probable each \
pair of carbon and nitrogen abundances is given the star's Teff, log g and [Fe/H], under a method v2 model ('age' or \
'mass'). The flow's joint density on the grid of starflow_cn_grid(model) (20 x 20 cells) is summed over the target on \
10 points across its training range (the paper's 3-D route: the target is integrated out, not fixed), at the star's \
labels moved onto the training release (SET starflow.label_release; no draws), and normalized. `level` is the \
probability held by the cells denser than the measured (C, N): 0 for the most typical pair, near 1 in the plane's \
outskirts; above the model's threshold (starflow_cn_grid(model)['threshold']) the star's bitmask carries CN_ATYPICAL \
(32). 4,010 flow rows per star; computed whatever starflow.cn_flag says. Null fields for bad input, a missing label, \
or a plane without density (far outside the training data). Models without a plane (the paper's method) are a plan \
error.",
    syntax_example = "starflow_cn_posterior(model, teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT p['level'], p['posterior']
  FROM (SELECT starflow_cn_posterior('age', teff, e_teff, logg, e_logg, fe_h, e_fe_h,
                                     c_fe, e_c_fe, n_fe, e_n_fe) AS p FROM starflow_input LIMIT 5);
```
Returns Struct {level: Float64, posterior: List(Float64)}: the posterior's 400 values sum to 1, [C/Fe] varying slowest
(value i is at c_fe[i / 20 + 1], n_fe[i % 20 + 1] of starflow_cn_grid(model), in SQL's 1-based indexing)."#,
    argument(name = "model", description = "Model name, a string literal: 'age' or 'mass' (method v2 models with a C-N plane; see `starflow models`)."),
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_cn_grid"),
    related_udf(name = "starflow_flags")
)]
StarflowCnPosterior = ("starflow_cn_posterior", None, StarOutput::CnPlane)
}
