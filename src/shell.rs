//! `starflow shell`: an interactive SQL prompt with history and multi-line statements, or, with stdin not a terminal,
//! a script runner: every statement runs (the last one without `;` too), and the exit code is non-zero when one fails.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::error::{CliError, ErrorClass};
use crate::interrupt::sigint_stops_statement;
use crate::session::Session;

const HELP: &str = "Statements end with ';' and may span lines.\n\
  \\dt            list tables\n\
  \\d NAME        a table's columns: types, units, descriptions\n\
  \\q             quit (also Ctrl-D)\n\
  \\?             this help\n\
Ctrl-C clears the current input or stops a running query.";

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("STARFLOW_HISTORY")
        .map(Into::into)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".starflow_history")))
}

/// What a backslash command does.
#[derive(Debug, PartialEq)]
enum Meta {
    Quit,
    Sql(String),
    /// `\d NAME`: the columns with their units and descriptions.
    Describe(String),
    Text(String),
}

fn meta_command(line: &str) -> Meta {
    let mut words = line.split_whitespace();
    match (words.next().unwrap_or_default(), words.next()) {
        ("\\q", _) => Meta::Quit,
        ("\\dt", _) => Meta::Sql("SHOW TABLES".to_string()),
        ("\\d", Some(table)) => Meta::Describe(table.to_string()),
        ("\\?", _) => Meta::Text(HELP.to_string()),
        (other, _) => Meta::Text(format!("unknown command {other} (\\? for help)")),
    }
}

/// The columns of `table` as a text table: name, type, nullable, unit and description, from the columns' metadata
/// (FITS inputs, starflow's outputs) or, where it has none, from what starflow knows of the name (the input view's
/// and the catalogue's columns).
async fn describe(session: &Session, table: &str) -> Result<String, CliError> {
    let schema = session.engine.context().table(table).await?.schema().as_arrow().clone();
    let mut rows: [Vec<String>; 5] = Default::default();
    for field in schema.fields() {
        let known = crate::survey::column_notes(field.name()).or_else(|| crate::catalog::column_notes(field.name()));
        let note = |key: &str, known: Option<&str>| field.metadata().get(key).cloned().or(known.map(String::from)).unwrap_or_default();
        let values = [
            field.name().clone(),
            field.data_type().to_string(),
            if field.is_nullable() { "YES" } else { "NO" }.to_string(),
            note("unit", known.map(|k| k.0)),
            note("description", known.map(|k| k.1)),
        ];
        rows.iter_mut().zip(values).for_each(|(column, value)| column.push(value));
    }
    let names = ["column_name", "data_type", "is_nullable", "unit", "description"];
    let columns: Vec<(&str, ArrayRef)> =
        names.iter().zip(rows).map(|(n, values)| (*n, Arc::new(StringArray::from(values)) as ArrayRef)).collect();
    let batch = RecordBatch::try_from_iter(columns)?;
    Ok(arrow::util::pretty::pretty_format_batches(&[batch])?.to_string())
}

/// The complete statements at the start of `text` (each up to a `;` outside strings and comments; ones of only
/// comments and blanks dropped) and the byte offset where the incomplete rest begins (`text.len()` if the rest is only
/// comments and blanks). Text the tokenizer cannot read yet (an unterminated string or comment) is all incomplete.
fn complete_statements(text: &str) -> (Vec<String>, usize) {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else {
        return (Vec::new(), if text.trim().is_empty() { text.len() } else { 0 });
    };
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    // Locations are 1-based lines and characters.
    let offset = |line: u64, column: u64| {
        let start = line_starts[(line as usize).saturating_sub(1).min(line_starts.len() - 1)];
        text[start..].char_indices().nth((column as usize).saturating_sub(1)).map_or(text.len(), |(i, _)| start + i)
    };
    let (mut statements, mut start, mut has_sql) = (Vec::new(), 0, false);
    for token in &tokens {
        match &token.token {
            Token::SemiColon => {
                let end = offset(token.span.end.line, token.span.end.column);
                if has_sql {
                    statements.push(text[start..end].to_string());
                }
                (start, has_sql) = (end, false);
            }
            Token::Whitespace(_) => {}
            _ => has_sql = true,
        }
    }
    // A rest of comments and blanks is nothing.
    (statements, if has_sql { start } else { text.len() })
}

/// Runs statements as their text arrives, reporting each failure and keeping the first.
struct Runner<'a> {
    session: &'a Session,
    buffer: String,
    first_failure: Option<CliError>,
    failures: usize,
}

impl<'a> Runner<'a> {
    fn new(session: &'a Session) -> Self {
        Self { session, buffer: String::new(), first_failure: None, failures: 0 }
    }

    async fn run(&mut self, sql: &str) {
        if let Err(e) = self.session.run_script(sql).await {
            self.failed(e);
        }
    }

    fn failed(&mut self, e: CliError) {
        eprintln!("{e}");
        self.failures += 1;
        self.first_failure.get_or_insert(e);
    }

    /// Add a line; run the statements it completes. `false` to quit.
    async fn line(&mut self, line: &str) -> bool {
        let trimmed = line.trim();
        if self.buffer.trim().is_empty() && trimmed.starts_with('\\') {
            match meta_command(trimmed) {
                Meta::Quit => return false,
                Meta::Sql(sql) => self.run(&sql).await,
                Meta::Describe(table) => match describe(self.session, &table).await {
                    Ok(text) => println!("{text}"),
                    Err(e) => self.failed(e),
                },
                Meta::Text(text) => println!("{text}"),
            }
            return true;
        }
        if self.buffer.trim().is_empty() && (trimmed.eq_ignore_ascii_case("quit") || trimmed.eq_ignore_ascii_case("exit")) {
            return false;
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        let (statements, rest) = complete_statements(&self.buffer);
        self.buffer.drain(..rest);
        for statement in statements {
            self.run(&statement).await;
        }
        true
    }

    /// At the end of the input: run what is left, even without its `;` (or unreadable: its error is reported).
    async fn finish(mut self) -> Result<(), CliError> {
        let rest = std::mem::take(&mut self.buffer);
        if complete_statements(&rest).1 < rest.len() {
            self.run(&rest).await;
        }
        match self.first_failure {
            None => Ok(()),
            Some(first) if self.failures == 1 => Err(CliError::new(first.class, "a statement failed (above)")),
            Some(first) => Err(CliError::new(first.class, format!("{} statements failed (above)", self.failures))),
        }
    }
}

pub async fn run(session: Session) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return script(&session).await;
    }
    sigint_stops_statement(true);
    let mut editor = DefaultEditor::new().map_err(|e| CliError::runtime(format!("cannot start the shell: {e}")))?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("starflow {} — SQL shell. \\? for help, \\q to quit.", env!("CARGO_PKG_VERSION"));
    let mut runner = Runner::new(&session);
    loop {
        let prompt = if runner.buffer.trim().is_empty() { "starflow> " } else { "       -> " };
        // Reading the terminal blocks: keep it off the runtime's other tasks.
        let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                runner.buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::runtime(format!("shell input: {e}"))),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.trim());
        }
        if !runner.line(&line).await {
            break;
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    // Interactive failures were reported as they happened; the session itself went fine.
    runner.first_failure = None;
    runner.finish().await
}

/// Statements piped in: run each as it is complete; the exit code is the first failure's.
async fn script(session: &Session) -> Result<(), CliError> {
    let mut runner = Runner::new(session);
    let mut input = std::io::stdin().lock();
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let read = tokio::task::block_in_place(|| input.read_line(&mut line));
        match read {
            Ok(0) => break,
            Ok(_) => {
                if !runner.line(line.trim_end_matches(['\n', '\r'])).await {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(CliError::new(ErrorClass::Data, format!("shell input, line {number}: not UTF-8 text")));
            }
            Err(e) => return Err(CliError::runtime(format!("shell input: {e}"))),
        }
    }
    runner.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands() {
        assert_eq!(meta_command("\\dt"), Meta::Sql("SHOW TABLES".into()));
        assert_eq!(meta_command("\\d stars"), Meta::Describe("stars".into()));
        assert_eq!(meta_command("\\q"), Meta::Quit);
        assert!(matches!(meta_command("\\x"), Meta::Text(m) if m.contains("unknown command")));
    }

    #[test]
    fn statements_end_at_semicolons_outside_strings_and_comments() {
        let text = "SELECT 4 AS d; -- trailing\nSELECT ';' AS s /* ; */; SELECT 'é;' AS e;\n-- only a comment\nSELECT 5";
        let (statements, rest) = complete_statements(text);
        assert_eq!(statements, vec!["SELECT 4 AS d;", " -- trailing\nSELECT ';' AS s /* ; */;", " SELECT 'é;' AS e;"]);
        assert_eq!(&text[rest..], "\n-- only a comment\nSELECT 5");
        assert_eq!(complete_statements("SELECT 'open; string"), (vec![], 0));
        assert_eq!(complete_statements("-- nothing\n;;\n"), (vec![], 14));
    }
}
