use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::posterior::bits::NAMES;

#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "Names of the bits set in a StarFlow BITMASK, in bit order: LOW_DENSITY (1), GRID_EDGE (2), \
BAD_INPUT (4), OUT_OF_RANGE (8), MULTIMODAL (16), CN_ATYPICAL (32), LABEL_MARGINALISED (64). Unknown bits are named \
BIT_n. Null for null.",
    syntax_example = "starflow_flag_names(bitmask)",
    sql_example = r#"```sql
> SELECT starflow_flag_names(9);
+-------------------------------+
| starflow_flag_names(Int64(9)) |
+-------------------------------+
| [LOW_DENSITY, OUT_OF_RANGE]   |
+-------------------------------+
```"#,
    argument(name = "bitmask", description = "A bitmask from starflow_age, starflow_mass or starflow_flags.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StarflowFlagNames {
    signature: Signature,
}

impl Default for StarflowFlagNames {
    fn default() -> Self {
        Self::new()
    }
}

impl StarflowFlagNames {
    pub fn new() -> Self {
        Self { signature: Signature::uniform(1, vec![DataType::Int64], Volatility::Immutable) }
    }
}

/// The names of the bits set in `mask`.
pub fn flag_names(mask: i64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1i64 << bit) != 0)
        .map(|bit| match NAMES.iter().find(|(value, _)| *value == 1i64 << bit) {
            Some((_, name)) => name.to_string(),
            None => format!("BIT_{bit}"),
        })
        .collect()
}

impl ScalarUDFImpl for StarflowFlagNames {
    fn name(&self) -> &str {
        "starflow_flag_names"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let masks = args.args[0].to_array(args.number_rows)?;
        let masks = masks.as_primitive::<Int64Type>();
        let mut list = ListBuilder::new(StringBuilder::new());
        for i in 0..masks.len() {
            if masks.is_null(i) {
                list.append(false);
                continue;
            }
            for name in flag_names(masks.value(i)) {
                list.values().append_value(name);
            }
            list.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(list.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_bit_order() {
        assert_eq!(flag_names(0), Vec::<String>::new());
        assert_eq!(flag_names(9), vec!["LOW_DENSITY", "OUT_OF_RANGE"]);
        assert_eq!(flag_names(4 | 16 | 2), vec!["GRID_EDGE", "BAD_INPUT", "MULTIMODAL"]);
        assert_eq!(flag_names(32 | 64 | 128), vec!["CN_ATYPICAL", "LABEL_MARGINALISED", "BIT_7"]);
    }
}
