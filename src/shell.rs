//! `starflow shell`: an interactive SQL prompt with history and multi-line statements.

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::session::Session;
use crate::error::CliError;

const HELP: &str = "Statements end with ';' and may span lines.\n\
  \\dt            list tables\n\
  \\d NAME        describe a table\n\
  \\q             quit (also Ctrl-D)\n\
  \\?             this help\n\
Ctrl-C clears the current input or stops a running query.";

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("STARFLOW_HISTORY")
        .map(Into::into)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".starflow_history")))
}

/// A backslash command's SQL, or `None` to quit.
fn meta_command(line: &str) -> Option<Result<String, String>> {
    let mut words = line.split_whitespace();
    match (words.next()?, words.next()) {
        ("\\q", _) => None,
        ("\\dt", _) => Some(Ok("SHOW TABLES".to_string())),
        ("\\d", Some(table)) => Some(Ok(format!("DESCRIBE {table}"))),
        ("\\?", _) => Some(Err(HELP.to_string())),
        (other, _) => Some(Err(format!("unknown command {other} (\\? for help)"))),
    }
}

pub async fn run(session: Session) -> Result<(), CliError> {
    let mut editor = DefaultEditor::new().map_err(|e| CliError::runtime(format!("cannot start the shell: {e}")))?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("starflow {} — SQL shell. \\? for help, \\q to quit.", env!("CARGO_PKG_VERSION"));
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "starflow> " } else { "       -> " };
        // Reading the terminal blocks: keep it off the runtime's other tasks.
        let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::runtime(format!("shell input: {e}"))),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match meta_command(trimmed) {
                None => break,
                Some(Ok(sql)) => report(session.run_script(&sql).await),
                Some(Err(text)) => println!("{text}"),
            }
            continue;
        }
        if trimmed.eq_ignore_ascii_case("quit") || trimmed.eq_ignore_ascii_case("exit") {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let _ = editor.add_history_entry(buffer.trim());
            report(session.run_script(&buffer).await);
            buffer.clear();
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

fn report(result: Result<(), CliError>) {
    if let Err(e) = result {
        eprintln!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands() {
        assert_eq!(meta_command("\\dt"), Some(Ok("SHOW TABLES".into())));
        assert_eq!(meta_command("\\d stars"), Some(Ok("DESCRIBE stars".into())));
        assert_eq!(meta_command("\\q"), None);
        assert!(matches!(meta_command("\\x"), Some(Err(m)) if m.contains("unknown command")));
    }
}
