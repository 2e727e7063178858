//! User-facing errors: one clear line and an exit code per class, never a panic or a backtrace.

use std::cell::Cell;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::task::Poll;

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
        Self { class, message: redact(&one_line(&message.into())) }
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

/// `text` on one line as it is, control characters escaped (`\n`): a status line naming a file whose name has a
/// newline stays one line.
pub fn escape_controls(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// `text` with the secrets a URL can carry hidden: user-info (`scheme://user:password@host`) and query strings (the
/// signature of a presigned URL). Every message starflow prints passes through here.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let scheme = before[..at].rsplit(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or_default();
        // Object-store keys are literal: a `?` there is part of the key, not a query string.
        let literal_key = crate::object_stores::OBJECT_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str());
        // A URL runs to the first space or closing quote/bracket.
        let end = after.find(|c: char| c.is_whitespace() || "'\"`<>()[]{}".contains(c)).unwrap_or(after.len());
        let url = &after[..end];
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***");
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        match path.find('?').filter(|_| !literal_key) {
            Some(q) => {
                out.push_str(&path[..=q]);
                out.push_str("***");
            }
            None => out.push_str(path),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Whether a panic raised now will be caught and reported as an error (the panic hook stays quiet then).
pub fn panic_is_caught() -> bool {
    CATCHING.with(Cell::get)
}

/// The message of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload.downcast_ref::<&str>().copied().or(payload.downcast_ref::<String>().map(String::as_str));
    text.unwrap_or("a panic").to_string()
}

/// Run `future`, turning a panic while it is polled into `Err(message)`: readers of damaged files (the parquet crate
/// on some corrupt footers) panic instead of returning an error.
pub async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let caught = CATCHING.replace(true);
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        CATCHING.set(caught);
        match polled {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    })
    .await
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
            let location = missing_location(m).unwrap_or_default();
            return (ErrorClass::Data, format!("not found: {}", crate::object_stores::typed_location(&location)));
        }
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_) => {
            let message = strip_prefixes(&root.strip_backtrace());
            let hint = crate::survey::release_hint(&message).unwrap_or_default();
            return (ErrorClass::Sql, format!("{message}{hint}"));
        }
        DataFusionError::Configuration(m) => return (ErrorClass::Sql, format!("invalid setting: {m}")),
        DataFusionError::ResourcesExhausted(m) => {
            return (ErrorClass::Runtime, format!("out of memory under --memory-limit: {m}"));
        }
        _ => {}
    }
    let chain = || std::iter::successors(Some(root as &(dyn std::error::Error + 'static)), |e| e.source());
    // Errors of starflow's own code raised inside DataFusion carry their class.
    if let Some(e) = chain().find_map(|e| e.downcast_ref::<CliError>()) {
        return (e.class, e.message.clone());
    }
    if let Some(DataError(m)) = chain().find_map(|e| e.downcast_ref::<DataError>()) {
        return (ErrorClass::Data, m.clone());
    }
    if let Some(fits) = chain().find_map(|e| e.downcast_ref::<starflow_fits::FitsError>()) {
        return (ErrorClass::Data, fits.to_string());
    }
    for err in chain() {
        if let Some(os) = err.downcast_ref::<object_store::Error>() {
            return (ErrorClass::Data, describe_store_error(os));
        }
        if let Some(DataFusionError::ObjectStore(os)) = err.downcast_ref::<DataFusionError>() {
            return (ErrorClass::Data, describe_store_error(os));
        }
    }
    let class = if chain().any(is_reading_error) { ErrorClass::Data } else { ErrorClass::Runtime };
    (class, strip_prefixes(&root.strip_backtrace()))
}

/// `e` as a data error naming the files being read (`files`: the one file, or how many and the first), if it is a
/// reader's error that names none: DataFusion's scans report a damaged data page or a CSV value that does not parse
/// without the file.
pub fn naming_files(e: DataFusionError, files: &[String]) -> DataFusionError {
    let root = e.find_root();
    let chain = || std::iter::successors(Some(root as &(dyn std::error::Error + 'static)), |e| e.source());
    let named = chain().any(|e| {
        e.is::<DataError>() || e.is::<CliError>() || e.is::<object_store::Error>() || e.is::<starflow_fits::FitsError>()
    });
    let place = match files {
        [] => return e,
        [file] => file.clone(),
        [first, ..] => format!("one of {} files ({first}, ...)", files.len()),
    };
    if named || !chain().any(is_reading_error) {
        return e;
    }
    data_error(format!("{place}: {}", strip_prefixes(&root.strip_backtrace())))
}

/// A reader's error: the input is damaged or not what its format says (a CSV value that does not parse, text that is
/// not UTF-8, a corrupt Parquet page). Not a SQL cast or arithmetic error, which are the query's.
fn is_reading_error(e: &(dyn std::error::Error + 'static)) -> bool {
    use datafusion::arrow::error::ArrowError as A;
    let arrow = |a: &A| matches!(a, A::CsvError(_) | A::JsonError(_) | A::ParseError(_) | A::ParquetError(_) | A::IoError(..));
    match e.downcast_ref::<DataFusionError>() {
        Some(DataFusionError::ParquetError(_) | DataFusionError::IoError(_)) => return true,
        Some(DataFusionError::ArrowError(a, _)) => return arrow(a),
        _ => {}
    }
    e.downcast_ref::<A>().is_some_and(arrow) || e.is::<datafusion::parquet::errors::ParquetError>()
}

/// The path in "table 'datafusion.public.<path>' not found" when the table name is a file path or URL (it has a '/'
/// or a file name extension: a table's own name has neither).
pub(crate) fn missing_location(message: &str) -> Option<String> {
    let name = message.strip_prefix("table '")?.strip_suffix("' not found")?;
    let name = name.strip_prefix("datafusion.public.").unwrap_or(name);
    (name.contains('/') || std::path::Path::new(name).extension().is_some()).then(|| name.to_string())
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

    #[test]
    fn url_secrets_are_redacted_and_object_keys_kept() {
        for (text, shown) in [
            ("cannot reach http://ak:PASS@127.0.0.1:1/x", "cannot reach http://***@127.0.0.1:1/x"),
            ("'https://u:p@ss@h/k.parquet?X-Amz-Signature=abc&b=c' failed", "'https://***@h/k.parquet?***' failed"),
            ("https://h/k.csv?sig=1 and http://h2/?q", "https://h/k.csv?*** and http://h2/?***"),
            ("s3://bkt/res?x=1.csv: not found", "s3://bkt/res?x=1.csv: not found"),
            ("GS://bkt/a#b?c", "GS://bkt/a#b?c"),
            ("no url: a?b", "no url: a?b"),
        ] {
            assert_eq!(redact(text), shown, "{text}");
        }
        assert_eq!(escape_controls("nl\nx.csv\tok é"), "nl\\nx.csv\\tok é");
    }
}
