//! SQL-level tests: every `tests/slt/*.slt` file (sqllogictest format) run against a starflow engine with the
//! bundled models. Values are printed as Arrow displays them, NULL for nulls.

use std::path::PathBuf;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::StreamExt;
use sqllogictest::{DBOutput, DefaultColumnType};
use starflow::engine::{Engine, EngineOptions};
use starflow::error::CliError;

struct Db {
    engine: Engine,
}

#[async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = CliError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, CliError> {
        let mut output = DBOutput::StatementComplete(0);
        for statement in self.engine.parse(sql)? {
            let Some(mut query) = self.engine.execute(statement).await? else { continue };
            let columns = query.stream.schema().fields().len();
            let mut rows = Vec::new();
            let options = FormatOptions::default().with_null("NULL");
            while let Some(batch) = query.stream.next().await {
                let batch = batch?;
                let formatters = batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
                for row in 0..batch.num_rows() {
                    rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
                }
            }
            output = DBOutput::Rows { types: vec![DefaultColumnType::Any; columns], rows };
        }
        Ok(output)
    }

    async fn shutdown(&mut self) {}
}

#[test]
fn sqllogictest_files() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "slt")).collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let result = runtime.block_on(async {
            let mut runner = sqllogictest::Runner::new(|| async {
                // Two partitions so that the determinism checks see real repartitioning.
                let options = EngineOptions { threads: 2, ..EngineOptions::default() };
                Ok::<_, CliError>(Db { engine: Engine::new(&options)? })
            });
            runner.with_column_validator(|_, _| true);
            runner.run_file_async(file).await
        });
        if let Err(e) = result {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} .slt files failed:\n{}", failures.len(), files.len(), failures.join("\n\n"));
}
