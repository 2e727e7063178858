use datafusion_macros::user_doc;

use super::{StarOutput, star_udf};

star_udf! {
#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The quality BITMASK of a star under a model: 1 LOW_DENSITY, 2 GRID_EDGE, 4 BAD_INPUT, \
8 OUT_OF_RANGE (method v2: after the label release's offsets; a missing label excepted), 16 MULTIMODAL, 32 CN_ATYPICAL \
(method v2: the measured [C/Fe], [N/Fe] lie outside the most typical part of the star's C-N plane, see \
starflow_cn_posterior; not evaluated with SET starflow.cn_flag = false), 64 LABEL_MARGINALISED (method v2: a missing \
log g, [C/Fe] or [N/Fe] was integrated out). Never null. Decode with starflow_flag_names.",
    syntax_example = "starflow_flags(model, teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe)",
    sql_example = r#"```sql
> SELECT starflow_flag_names(starflow_flags('age', teff, e_teff, logg, e_logg, fe_h, e_fe_h,
                                            c_fe, e_c_fe, n_fe, e_n_fe))
  FROM starflow_input LIMIT 5;
```
Returns Int64."#,
    argument(name = "model", description = "Model name, a string literal: 'age', 'mass', 'age_paper' or 'mass_paper' (see `starflow models`)."),
    argument(
        name = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe",
        description = "Teff [K], log g [dex], [Fe/H], [C/Fe], [N/Fe] [dex], each followed by its 1-sigma error; any numeric type."
    ),
    related_udf(name = "starflow_flag_names"),
    related_udf(name = "starflow_density")
)]
StarflowFlags = ("starflow_flags", None, StarOutput::Flags)
}
