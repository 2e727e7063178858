//! Units and descriptions in the Parquet key-value metadata that astronomers' tools read, built from the Arrow field
//! metadata (`unit`, `description`, `ucd`) that starflow's schemas and the FITS reader carry:
//! - astropy (`Table.read('x.parquet')`): `table_meta_yaml` (its ECSV-style header: per column name, datatype, unit,
//!   description; the file-level metadata as `meta`) and `table::len::NAME` (the longest string of a string column,
//!   which astropy's reader needs: without it it fails on null strings);
//! - TOPCAT/STIL and other VO tools: IVOA VOParquet 1.0 (`IVOA.VOTable-Parquet.version` and
//!   `IVOA.VOTable-Parquet.content`, a VOTable document whose TABLE has one FIELD per Parquet column and no DATA).

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

/// The keys known before any row is written (the Parquet footer is written at the end, so string lengths are added
/// there, from [`StringLengths`]).
pub fn key_values(schema: &Schema) -> Vec<(String, String)> {
    vec![
        ("table_meta_yaml".to_string(), astropy_yaml(schema)),
        ("IVOA.VOTable-Parquet.version".to_string(), "1.0".to_string()),
        ("IVOA.VOTable-Parquet.content".to_string(), votable(schema)),
    ]
}

/// astropy's header: YAML, written here as JSON flow mappings (valid YAML, and exact escaping).
fn astropy_yaml(schema: &Schema) -> String {
    let mut lines = vec!["datatype:".to_string()];
    for field in schema.fields() {
        let mut entry = serde_json::Map::new();
        entry.insert("name".into(), field.name().as_str().into());
        let (datatype, subtype) = astropy_type(field.data_type());
        entry.insert("datatype".into(), datatype.into());
        if let Some(subtype) = subtype {
            entry.insert("subtype".into(), subtype.into());
        }
        for key in ["unit", "description"] {
            if let Some(value) = field.metadata().get(key) {
                entry.insert(key.into(), value.as_str().into());
            }
        }
        lines.push(format!("- {}", serde_json::Value::Object(entry)));
    }
    if !schema.metadata().is_empty() {
        let meta: serde_json::Map<String, serde_json::Value> =
            schema.metadata().iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
        lines.push(format!("meta: {}", serde_json::Value::Object(meta)));
    }
    lines.join("\n")
}

/// astropy's (datatype, subtype) names.
fn astropy_type(data_type: &DataType) -> (String, Option<String>) {
    let scalar = |t: &DataType| match t {
        DataType::Boolean => "bool",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Float16 => "float16",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        _ => "string",
    };
    match data_type {
        DataType::FixedSizeList(inner, n) => ("string".into(), Some(format!("{}[{n}]", scalar(inner.data_type())))),
        DataType::List(inner) | DataType::LargeList(inner) => {
            ("string".into(), Some(format!("{}[null]", scalar(inner.data_type()))))
        }
        other => (scalar(other).into(), None),
    }
}

/// VOTable (datatype, arraysize) of a column.
fn vo_type(data_type: &DataType) -> (&'static str, Option<String>) {
    match data_type {
        DataType::Boolean => ("boolean", None),
        DataType::UInt8 => ("unsignedByte", None),
        DataType::Int8 | DataType::Int16 => ("short", None),
        DataType::UInt16 | DataType::Int32 => ("int", None),
        DataType::UInt32 | DataType::Int64 | DataType::UInt64 => ("long", None),
        DataType::Float16 | DataType::Float32 => ("float", None),
        DataType::Float64 => ("double", None),
        DataType::FixedSizeList(inner, n) => {
            let (datatype, inner_size) = vo_type(inner.data_type());
            // VOTable arraysize lists axes fastest first: "3x2" for a list of 2 lists of 3.
            (datatype, Some(inner_size.map_or(n.to_string(), |s| format!("{s}x{n}"))))
        }
        DataType::List(inner) | DataType::LargeList(inner) => (vo_type(inner.data_type()).0, Some("*".into())),
        _ => ("char", Some("*".into())),
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn field_xml(field: &Field) -> String {
    let (datatype, arraysize) = vo_type(field.data_type());
    let mut attributes = format!("name=\"{}\" datatype=\"{datatype}\"", xml_escape(field.name()));
    if let Some(size) = arraysize {
        attributes.push_str(&format!(" arraysize=\"{size}\""));
    }
    for key in ["unit", "ucd"] {
        if let Some(value) = field.metadata().get(key) {
            attributes.push_str(&format!(" {key}=\"{}\"", xml_escape(value)));
        }
    }
    match field.metadata().get("description") {
        Some(d) => format!("<FIELD {attributes}><DESCRIPTION>{}</DESCRIPTION></FIELD>", xml_escape(d)),
        None => format!("<FIELD {attributes}/>"),
    }
}

fn votable(schema: &Schema) -> String {
    let description = schema.metadata().get("description").map(|d| format!("<DESCRIPTION>{}</DESCRIPTION>", xml_escape(d)));
    let fields: String = schema.fields().iter().map(|f| field_xml(f)).collect::<Vec<_>>().join("\n");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n<RESOURCE>\n<TABLE>\n{}{fields}\n\
         <PARQUET type=\"Parquet-local-XML\"/>\n</TABLE>\n</RESOURCE>\n</VOTABLE>",
        description.map(|d| d + "\n").unwrap_or_default()
    )
}

/// The longest value of each string column seen so far, for astropy's `table::len::NAME` keys.
pub struct StringLengths {
    columns: Vec<(usize, String, usize)>,
}

impl StringLengths {
    pub fn new(schema: &Schema) -> Self {
        let strings = schema.fields().iter().enumerate().filter(|(_, f)| {
            matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        });
        // astropy sizes a column of only nulls as at least one character.
        Self { columns: strings.map(|(i, f)| (i, f.name().clone(), 1)).collect() }
    }

    pub fn observe(&mut self, batch: &RecordBatch) {
        for (index, _, longest) in &mut self.columns {
            let column = batch.column(*index);
            let lengths: Box<dyn Iterator<Item = Option<&str>>> = match column.data_type() {
                DataType::Utf8 => Box::new(column.as_string::<i32>().iter()),
                DataType::LargeUtf8 => Box::new(column.as_string::<i64>().iter()),
                DataType::Utf8View => Box::new(column.as_string_view().iter()),
                _ => continue,
            };
            // astropy counts characters (numpy's U type).
            *longest = lengths.flatten().map(|s| s.chars().count()).fold(*longest, usize::max);
        }
    }

    pub fn key_values(&self) -> Vec<(String, String)> {
        self.columns.iter().map(|(_, name, n)| (format!("table::len::{name}"), n.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};

    fn schema() -> Schema {
        let described = |f: Field, unit: &str, description: &str| {
            f.with_metadata(HashMap::from([("unit".into(), unit.into()), ("description".into(), description.into())]))
        };
        Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            described(Field::new("age", DataType::Float64, true), "Gyr", "Age <max. likelihood> & \"quoted\""),
            Field::new("grid", DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, true)), 3), true),
        ])
        .with_metadata(HashMap::from([("description".into(), "StarFlow: ages".into())]))
    }

    #[test]
    fn votable_and_astropy_headers_describe_every_column() {
        let kv: HashMap<String, String> = key_values(&schema()).into_iter().collect();
        let xml = &kv["IVOA.VOTable-Parquet.content"];
        assert!(xml.contains(r#"<FIELD name="id" datatype="char" arraysize="*"/>"#), "{xml}");
        assert!(xml.contains(r#"<FIELD name="age" datatype="double" unit="Gyr"><DESCRIPTION>Age &lt;max. likelihood&gt; &amp; &quot;quoted&quot;</DESCRIPTION></FIELD>"#), "{xml}");
        assert!(xml.contains(r#"<FIELD name="grid" datatype="float" arraysize="3"/>"#), "{xml}");
        assert!(xml.contains("<DESCRIPTION>StarFlow: ages</DESCRIPTION>"));
        assert_eq!(kv["IVOA.VOTable-Parquet.version"], "1.0");
        let yaml = &kv["table_meta_yaml"];
        assert!(yaml.starts_with("datatype:\n- {\"name\":\"id\",\"datatype\":\"string\"}"), "{yaml}");
        assert!(yaml.contains(r#""unit":"Gyr""#) && yaml.contains(r#""subtype":"float32[3]""#), "{yaml}");
        assert!(yaml.ends_with(r#"meta: {"description":"StarFlow: ages"}"#), "{yaml}");
    }

    #[test]
    fn string_lengths_count_characters_and_skip_nulls() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true), Field::new("x", DataType::Float64, true)]));
        let mut lengths = StringLengths::new(&schema);
        assert_eq!(lengths.key_values(), vec![("table::len::id".to_string(), "1".to_string())]);
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec![Some("2M0000"), None, Some("é")])), Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))],
        )
        .unwrap();
        lengths.observe(&batch);
        assert_eq!(lengths.key_values(), vec![("table::len::id".to_string(), "6".to_string())]);
    }
}
