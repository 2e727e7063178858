use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion_macros::user_doc;

use crate::posterior::bits::{BAD_INPUT, CN_ATYPICAL, GRID_EDGE, LOW_DENSITY, OUT_OF_RANGE};

/// The named cuts: (name, the bits a good star must not have, what it is for). docs/METHOD.md, "Recommended cuts",
/// gives the evidence for each.
pub const CUTS: [(&str, i64, &str); 3] = [
    ("recommended", LOW_DENSITY | GRID_EDGE | BAD_INPUT | OUT_OF_RANGE | CN_ATYPICAL, "ages and masses, and most science"),
    ("paper", LOW_DENSITY | BAD_INPUT, "the VAC paper's density cut, for comparing with its populations"),
    ("strict", i64::MAX, "no flag at all: the smallest, cleanest sample"),
];

#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "Whether a star passes a recommended quality cut, from its BITMASK. 'recommended' (the default) \
drops LOW_DENSITY (1), GRID_EDGE (2), BAD_INPUT (4), OUT_OF_RANGE (8) and CN_ATYPICAL (32): stars outside the \
training data, without an estimate, or whose carbon and nitrogen are atypical (their age intervals under-cover); it \
keeps the warnings MULTIMODAL (16) and LABEL_MARGINALISED (64), whose posteriors stay calibrated but are wider \
(docs/METHOD.md, \"Recommended cuts\"; the numbers: models/CUTS.md). 'paper' drops LOW_DENSITY and BAD_INPUT only \
(the VAC paper's cut); 'strict' keeps only bitmask 0. Null for a null bitmask.",
    syntax_example = "starflow_good(bitmask [, cut])",
    sql_example = r#"```sql
> SELECT starflow_good(0) AS clean, starflow_good(16) AS multimodal, starflow_good(16, 'strict') AS strict,
         starflow_good(32) AS cn_atypical, starflow_good(32, 'paper') AS paper;
-- true, true, false, false, true
```"#,
    argument(name = "bitmask", description = "A bitmask from starflow_age, starflow_mass, starflow_flags or a catalogue."),
    argument(name = "cut", description = "'recommended' (default), 'paper' or 'strict', a string literal.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StarflowGood {
    signature: Signature,
}

impl Default for StarflowGood {
    fn default() -> Self {
        Self::new()
    }
}

impl StarflowGood {
    pub fn new() -> Self {
        let one_of = vec![
            TypeSignature::Exact(vec![DataType::Int64]),
            TypeSignature::Exact(vec![DataType::Int64, DataType::Utf8]),
        ];
        Self { signature: Signature::one_of(one_of, Volatility::Immutable) }
    }
}

/// The bits a cut rejects, or an error listing the cuts.
pub fn cut_bits(name: &str) -> std::result::Result<i64, String> {
    let name = name.trim().to_ascii_lowercase();
    CUTS.iter().find(|(n, ..)| *n == name).map(|(_, bits, _)| *bits).ok_or_else(|| {
        let names: Vec<String> = CUTS.iter().map(|(n, ..)| format!("'{n}'")).collect();
        format!("starflow_good: unknown cut '{name}' (one of {})", names.join(", "))
    })
}

impl ScalarUDFImpl for StarflowGood {
    fn name(&self) -> &str {
        "starflow_good"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rejected = match args.args.get(1) {
            None => cut_bits("recommended"),
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))) => cut_bits(name),
            Some(_) => return exec_err!("starflow_good: the cut must be a string literal such as 'strict'"),
        };
        let rejected = match rejected {
            Ok(bits) => bits,
            Err(message) => return exec_err!("{message}"),
        };
        let masks = args.args[0].to_array(args.number_rows)?;
        let masks = masks.as_primitive::<Int64Type>();
        let good: BooleanArray = masks.iter().map(|m| m.map(|m| m & rejected == 0)).collect();
        let good = Arc::new(good);
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::try_from_array(good.as_ref(), 0)?),
            ColumnarValue::Array(_) => ColumnarValue::Array(good),
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posterior::bits::{LABEL_MARGINALISED, MULTIMODAL};

    fn good(mask: i64, cut: &str) -> bool {
        mask & cut_bits(cut).unwrap() == 0
    }

    #[test]
    fn cuts_keep_and_drop_the_documented_bits() {
        for warning in [MULTIMODAL, LABEL_MARGINALISED] {
            assert!(good(warning, "recommended"), "{warning}");
            assert!(!good(warning, "strict"), "{warning}");
        }
        for dropped in [LOW_DENSITY, GRID_EDGE, BAD_INPUT, OUT_OF_RANGE, CN_ATYPICAL] {
            assert!(!good(dropped, "recommended"), "{dropped}");
        }
        assert!(good(GRID_EDGE | OUT_OF_RANGE | MULTIMODAL | CN_ATYPICAL, "paper"));
        assert!(!good(LOW_DENSITY, "paper") && !good(BAD_INPUT, " PAPER "));
        assert!(good(0, "strict"));
        let err = cut_bits("loose").unwrap_err();
        assert!(err.contains("unknown cut 'loose'") && err.contains("'strict'"), "{err}");
    }
}
