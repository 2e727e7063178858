//! User-facing errors: one clear line and an exit code per class, never a panic or a backtrace.

use std::fmt;

use datafusion::common::DataFusionError;

/// Exit codes, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Anything not classified below (an internal or execution failure).
    Runtime = 1,
    /// Bad command-line usage (clap uses 2 as well).
    Usage = 2,
    /// SQL syntax, unknown table/column/function, type errors: the query is wrong.
    Sql = 3,
    /// Reading input failed: missing file/bucket/key, access denied, unreachable endpoint, unsupported or corrupt format.
    Data = 4,
    /// Writing output failed.
    Output = 5,
    /// Ctrl-C.
    Interrupted = 130,
}

#[derive(Debug)]
pub struct CliError {
    pub class: ErrorClass,
    pub message: String,
}

impl CliError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: one_line(&message.into()) }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Usage, message)
    }
    pub fn output(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Output, message)
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Runtime, message)
    }
    pub fn interrupted() -> Self {
        Self::new(ErrorClass::Interrupted, "interrupted")
    }
    pub fn reclass(self, class: ErrorClass) -> Self {
        Self { class, ..self }
    }
    pub fn exit_code(&self) -> i32 {
        self.class as i32
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.class {
            ErrorClass::Runtime => "error",
            ErrorClass::Usage => "usage error",
            ErrorClass::Sql => "SQL error",
            ErrorClass::Data => "data error",
            ErrorClass::Output => "output error",
            ErrorClass::Interrupted => "interrupted",
        };
        if self.class == ErrorClass::Interrupted { write!(f, "{kind}") } else { write!(f, "{kind}: {}", self.message) }
    }
}

impl std::error::Error for CliError {}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A problem with the data a query needs (a store, a file, a model), raised by starflow's own code inside DataFusion.
#[derive(Debug)]
pub struct DataError(pub String);

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataError {}

pub fn data_error(message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(DataError(message.into())))
}

impl From<DataFusionError> for CliError {
    fn from(e: DataFusionError) -> Self {
        let (class, message) = classify(&e);
        Self::new(class, message)
    }
}

impl From<datafusion::arrow::error::ArrowError> for CliError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        DataFusionError::from(e).into()
    }
}

/// Find the cause that tells the user what to fix, looking through DataFusion's wrappers and the `source()` chain.
fn classify(e: &DataFusionError) -> (ErrorClass, String) {
    let root = e.find_root();
    match root {
        DataFusionError::SQL(parser, _) => {
            let text = parser.to_string();
            // The parser gives a position for every token but the end of the input.
            let at_end = if text.ends_with("found: EOF") { " (at the end of the input)" } else { "" };
            return (ErrorClass::Sql, format!("syntax error: {text}{at_end}"));
        }
        // A URL table whose file or object does not exist is planned as an unknown table.
        DataFusionError::Plan(m) if missing_location(m).is_some() => {
            return (ErrorClass::Data, format!("not found: {}", missing_location(m).unwrap_or_default()));
        }
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_) => {
            return (ErrorClass::Sql, strip_prefixes(&root.strip_backtrace()));
        }
        DataFusionError::Configuration(m) => return (ErrorClass::Sql, format!("invalid setting: {m}")),
        DataFusionError::ResourcesExhausted(m) => {
            return (ErrorClass::Runtime, format!("out of memory under --memory-limit: {m}"));
        }
        _ => {}
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(root);
    while let Some(err) = source {
        if let Some(DataError(m)) = err.downcast_ref::<DataError>() {
            return (ErrorClass::Data, m.clone());
        }
        if let Some(fits) = err.downcast_ref::<starflow_fits::FitsError>() {
            return (ErrorClass::Data, fits.to_string());
        }
        if let Some(os) = err.downcast_ref::<object_store::Error>() {
            return (ErrorClass::Data, describe_store_error(os));
        }
        if let Some(DataFusionError::ObjectStore(os)) = err.downcast_ref::<DataFusionError>() {
            return (ErrorClass::Data, describe_store_error(os));
        }
        source = err.source();
    }
    let class = match root {
        DataFusionError::ParquetError(_) | DataFusionError::IoError(_) => ErrorClass::Data,
        DataFusionError::ArrowError(a, _) if matches!(**a, datafusion::arrow::error::ArrowError::CsvError(_)) => {
            ErrorClass::Data
        }
        _ => ErrorClass::Runtime,
    };
    (class, strip_prefixes(&root.strip_backtrace()))
}

/// The path in "table 'datafusion.public.<path>' not found" when the table name is a file path or URL.
pub(crate) fn missing_location(message: &str) -> Option<String> {
    let name = message.strip_prefix("table '")?.strip_suffix("' not found")?;
    let name = name.strip_prefix("datafusion.public.").unwrap_or(name);
    name.contains('/').then(|| name.to_string())
}

fn describe_store_error(e: &object_store::Error) -> String {
    use object_store::Error as E;
    match e {
        E::NotFound { path, .. } => format!("not found: {path}"),
        E::PermissionDenied { path, source } | E::Unauthenticated { path, source } => {
            format!("access denied to {path}: {}", one_line(&source.to_string()))
        }
        other => {
            let text = chain_text(other);
            let unreachable = ["error sending request", "connection refused", "tcp connect", "timed out", "dns error"];
            if unreachable.iter().any(|s| text.to_lowercase().contains(s)) {
                format!("cannot reach the storage endpoint: {text}")
            } else if text.contains("NoSuchBucket") {
                format!("no such bucket: {text}")
            } else {
                text
            }
        }
    }
}

/// An error and its sources in one line, without repeating what a wrapper already quoted.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    one_line(&parts.join(": "))
}

/// DataFusion prefixes messages with the variant name ("Error during planning: "); the class already says it.
fn strip_prefixes(m: &str) -> String {
    let mut m = m.trim();
    for prefix in ["Error during planning: ", "Schema error: ", "This feature is not implemented: ", "Execution error: "] {
        m = m.strip_prefix(prefix).unwrap_or(m);
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_root_cause() {
        let plan = DataFusionError::Context("ctx".into(), Box::new(DataFusionError::Plan("table 't' not found".into())));
        let e = CliError::from(plan);
        assert_eq!((e.class, e.message.as_str()), (ErrorClass::Sql, "table 't' not found"));

        let missing = DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "bucket/x.parquet".into(),
            source: "404".into(),
        }));
        let e = CliError::from(missing);
        assert_eq!((e.class, e.message.as_str()), (ErrorClass::Data, "not found: bucket/x.parquet"));
        assert_eq!(e.exit_code(), 4);
        assert_eq!(e.to_string(), "data error: not found: bucket/x.parquet");

        let multi = CliError::runtime("line one\n  line two");
        assert_eq!(multi.message, "line one line two");
    }
}
