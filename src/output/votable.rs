//! Units and descriptions in the Parquet metadata that astronomers' tools read, built from the Arrow field metadata
//! (`unit`, `description`, `ucd`) that starflow's schemas and the FITS reader carry:
//! - astropy (`Table.read('x.parquet')`): `table_meta_yaml` (its ECSV-style header: per column name, datatype, unit,
//!   description; the file-level metadata as `meta`) and `table::len::NAME` (the longest string of a string column,
//!   which astropy's reader needs: without it it fails on null strings);
//! - TOPCAT/STIL and other VO tools: IVOA VOParquet 1.0 (`IVOA.VOTable-Parquet.version` and
//!   `IVOA.VOTable-Parquet.content`, a VOTable document whose TABLE has one FIELD per Parquet column and no DATA).
//!
//! pyarrow (and so astropy) takes a file's metadata from its stored Arrow schema (`ARROW:schema`) when there is one,
//! not from the Parquet key-values: the keys go into both, and since the string lengths are known only after the last
//! row, the Arrow schema is stored when the file is closed.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Keys this module writes: a copy read from an input file (a starflow output read back) is replaced, not kept stale.
fn is_ours(key: &str) -> bool {
    key == "table_meta_yaml" || key.starts_with("IVOA.VOTable-Parquet.") || key.starts_with("table::len::")
}

/// An output's schema and the longest value of each string column seen so far.
pub struct Described {
    schema: SchemaRef,
    /// Column index -> longest string in characters (also of strings in lists).
    strings: HashMap<usize, usize>,
}

/// The strings of a string column, or of the (nested) lists of strings of a list column.
fn strings(array: &dyn Array) -> Option<Box<dyn Iterator<Item = Option<&str>> + '_>> {
    match array.data_type() {
        DataType::Utf8 => Some(Box::new(array.as_string::<i32>().iter())),
        DataType::LargeUtf8 => Some(Box::new(array.as_string::<i64>().iter())),
        DataType::Utf8View => Some(Box::new(array.as_string_view().iter())),
        DataType::FixedSizeList(..) => strings(array.as_fixed_size_list().values().as_ref()),
        DataType::List(_) => strings(array.as_list::<i32>().values().as_ref()),
        DataType::LargeList(_) => strings(array.as_list::<i64>().values().as_ref()),
        _ => None,
    }
}

fn holds_strings(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::FixedSizeList(inner, _) | DataType::List(inner) | DataType::LargeList(inner) => holds_strings(inner.data_type()),
        _ => false,
    }
}

impl Described {
    pub fn new(schema: SchemaRef) -> Self {
        let columns = schema.fields().iter().enumerate().filter(|(_, f)| holds_strings(f.data_type()));
        // astropy sizes a column of only nulls as at least one character.
        let strings = columns.map(|(i, _)| (i, 1)).collect();
        Self { schema, strings }
    }

    pub fn observe(&mut self, batch: &RecordBatch) {
        for (index, longest) in &mut self.strings {
            // Values under a null list entry count too: harmless, they only make the width larger.
            if let Some(values) = strings(batch.column(*index).as_ref()) {
                // astropy counts characters (numpy's U type).
                *longest = values.flatten().map(|s| s.chars().count()).fold(*longest, usize::max);
            }
        }
    }

    /// The schema with its metadata for astropy and VO tools added to its own (descriptions, provenance).
    pub fn schema(&self) -> Schema {
        let own: HashMap<String, String> =
            self.schema.metadata().iter().filter(|(k, _)| !is_ours(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut metadata = own.clone();
        metadata.insert("table_meta_yaml".into(), astropy_yaml(&self.schema, &own));
        metadata.insert("IVOA.VOTable-Parquet.version".into(), "1.0".into());
        metadata.insert("IVOA.VOTable-Parquet.content".into(), votable(&self.schema, &self.strings));
        for (&index, longest) in &self.strings {
            metadata.insert(format!("table::len::{}", self.schema.field(index).name()), longest.to_string());
        }
        self.schema.as_ref().clone().with_metadata(metadata)
    }
}

/// astropy's header: YAML, written here as JSON flow mappings (valid YAML, and exact escaping).
fn astropy_yaml(schema: &Schema, meta: &HashMap<String, String>) -> String {
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
    if !meta.is_empty() {
        let meta: serde_json::Map<String, serde_json::Value> = meta.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
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

/// VOTable (datatype, arraysize) of a column whose strings are at most `strlen` characters long. A string's length is
/// bounded (`18*`), not `*`: astropy reads `*` as an object column, which its VOParquet reader cannot stack with the
/// data's fixed-width strings.
fn vo_type(data_type: &DataType, strlen: usize) -> (&'static str, Option<String>) {
    // Axes inside an array are fixed: "18x3" is three strings of up to 18 characters.
    let fixed = |size: Option<String>| size.map(|s| s.trim_end_matches('*').to_string());
    match data_type {
        DataType::Boolean => ("boolean", None),
        DataType::UInt8 => ("unsignedByte", None),
        DataType::Int8 | DataType::Int16 => ("short", None),
        DataType::UInt16 | DataType::Int32 => ("int", None),
        DataType::UInt32 | DataType::Int64 | DataType::UInt64 => ("long", None),
        DataType::Float16 | DataType::Float32 => ("float", None),
        DataType::Float64 => ("double", None),
        DataType::FixedSizeList(inner, n) => {
            let (datatype, inner_size) = vo_type(inner.data_type(), strlen);
            // VOTable arraysize lists axes fastest first: "3x2" for a list of 2 lists of 3.
            (datatype, Some(fixed(inner_size).map_or(n.to_string(), |s| format!("{s}x{n}"))))
        }
        DataType::List(inner) | DataType::LargeList(inner) => {
            let (datatype, inner_size) = vo_type(inner.data_type(), strlen);
            (datatype, Some(fixed(inner_size).map_or("*".to_string(), |s| format!("{s}x*"))))
        }
        _ => ("char", Some(format!("{strlen}*"))),
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A FIELD with its name also as its ID: astropy names a VOTable's columns by ID, and would otherwise make one up from
/// the name (`_0_00` for the VAC's posterior column `0_00`), which no longer matches the Parquet column it stacks with.
fn field_xml(field: &Field, strlen: usize) -> String {
    let (datatype, arraysize) = vo_type(field.data_type(), strlen);
    let name = xml_escape(field.name());
    let mut attributes = format!("ID=\"{name}\" name=\"{name}\" datatype=\"{datatype}\"");
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

fn votable(schema: &Schema, strings: &HashMap<usize, usize>) -> String {
    let description = schema.metadata().get("description").map(|d| format!("<DESCRIPTION>{}</DESCRIPTION>", xml_escape(d)));
    let fields: Vec<String> =
        schema.fields().iter().enumerate().map(|(i, f)| field_xml(f, strings.get(&i).copied().unwrap_or(1))).collect();
    let fields = fields.join("\n");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n<RESOURCE>\n<TABLE>\n{}{fields}\n\
         <PARQUET type=\"Parquet-local-XML\"/>\n</TABLE>\n</RESOURCE>\n</VOTABLE>",
        description.map(|d| d + "\n").unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{FixedSizeListArray, Float64Array, StringArray};

    fn schema() -> Schema {
        let described = |f: Field, unit: &str, description: &str| {
            f.with_metadata(HashMap::from([("unit".into(), unit.into()), ("description".into(), description.into())]))
        };
        Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            described(Field::new("age", DataType::Float64, true), "Gyr", "Age <max. likelihood> & \"quoted\""),
            Field::new("grid", DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, true)), 3), true),
        ])
        // A stale astropy header, as in a starflow output read back: replaced, not kept.
        .with_metadata(HashMap::from([("description".into(), "StarFlow: ages".into()), ("table_meta_yaml".into(), "old".into())]))
    }

    #[test]
    fn votable_and_astropy_headers_describe_every_column() {
        let described = Described::new(Arc::new(schema())).schema();
        let kv = described.metadata();
        let xml = &kv["IVOA.VOTable-Parquet.content"];
        assert!(xml.contains(r#"<FIELD ID="id" name="id" datatype="char" arraysize="1*"/>"#), "{xml}");
        assert!(xml.contains(r#"<FIELD ID="age" name="age" datatype="double" unit="Gyr"><DESCRIPTION>Age &lt;max. likelihood&gt; &amp; &quot;quoted&quot;</DESCRIPTION></FIELD>"#), "{xml}");
        assert!(xml.contains(r#"<FIELD ID="grid" name="grid" datatype="float" arraysize="3"/>"#), "{xml}");
        assert!(xml.contains("<DESCRIPTION>StarFlow: ages</DESCRIPTION>"));
        assert_eq!(kv["IVOA.VOTable-Parquet.version"], "1.0");
        // YAML of JSON flow mappings: each line parses as JSON (key order is serde_json's).
        let yaml: Vec<&str> = kv["table_meta_yaml"].lines().collect();
        let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap();
        assert_eq!(yaml[0], "datatype:");
        assert_eq!(json(&yaml[1][2..]), serde_json::json!({"name": "id", "datatype": "string"}));
        assert_eq!(
            json(&yaml[2][2..]),
            serde_json::json!({"name": "age", "datatype": "float64", "unit": "Gyr", "description": "Age <max. likelihood> & \"quoted\""})
        );
        assert_eq!(json(&yaml[3][2..]), serde_json::json!({"name": "grid", "datatype": "string", "subtype": "float32[3]"}));
        assert_eq!(yaml[4].strip_prefix("meta: ").map(json), Some(serde_json::json!({"description": "StarFlow: ages"})));
        assert_eq!(yaml.len(), 5);
    }

    #[test]
    fn string_lengths_count_characters_of_strings_and_lists_of_strings() {
        let words = DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Utf8, true)), 2);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
            Field::new("words", words, true),
        ]));
        let mut described = Described::new(Arc::clone(&schema));
        let len = |d: &Described, name: &str| d.schema().metadata().get(&format!("table::len::{name}")).cloned();
        assert_eq!(len(&described, "id").as_deref(), Some("1"));
        let words = FixedSizeListArray::new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            2,
            Arc::new(StringArray::from(vec![Some("ab"), None, Some("cdé"), Some(""), None, Some("f")])),
            None,
        );
        let ids = StringArray::from(vec![Some("2M0000"), None, Some("é")]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])), Arc::new(words)]).unwrap();
        described.observe(&batch);
        assert_eq!((len(&described, "id").as_deref(), len(&described, "words").as_deref()), (Some("6"), Some("3")));
        assert_eq!(len(&described, "x"), None);
        let xml = described.schema().metadata()["IVOA.VOTable-Parquet.content"].clone();
        assert!(xml.contains(r#"name="id" datatype="char" arraysize="6*""#) && xml.contains(r#"name="words" datatype="char" arraysize="3x2""#), "{xml}");
    }
}
