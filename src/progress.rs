//! A progress bar on stderr for long queries: rows read, rows/s and an ETA when the input size is known.
//!
//! Rows are counted at the plan's leaves (the scans), whose live metrics DataFusion updates as batches are produced;
//! the total comes from the scans' statistics, which are exact for Parquet (row counts in the file footers).

use std::sync::Arc;
use std::time::Duration;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

pub struct Progress {
    running: Option<(ProgressBar, JoinHandle<()>)>,
}

fn leaves(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn ExecutionPlan>>) {
    if plan.children().is_empty() {
        out.push(Arc::clone(plan));
    }
    for child in plan.children() {
        leaves(child, out);
    }
}

fn rows_read(leaves: &[Arc<dyn ExecutionPlan>]) -> u64 {
    leaves.iter().filter_map(|l| l.metrics()?.output_rows()).map(|n| n as u64).sum()
}

/// Total input rows, when every scan knows its own.
fn total_rows(leaves: &[Arc<dyn ExecutionPlan>]) -> Option<u64> {
    let context = StatisticsContext::new();
    leaves.iter().try_fold(0u64, |sum, leaf| {
        let stats = context.compute(leaf.as_ref(), &StatisticsArgs::new()).ok()?;
        stats.num_rows.get_value().map(|n| sum + *n as u64)
    })
}

impl Progress {
    /// Start showing progress of `plan` if `enabled` (the caller decides: a terminal, and not `--quiet`).
    pub fn start(plan: &Arc<dyn ExecutionPlan>, enabled: bool) -> Self {
        if !enabled {
            return Self { running: None };
        }
        let mut scans = Vec::new();
        leaves(plan, &mut scans);
        let bar = match total_rows(&scans) {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{bar:30} {human_pos}/{human_len} rows  {per_sec}  ETA {eta}  [{elapsed}]")
                    .expect("static template"),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {human_pos} rows  {per_sec}  [{elapsed}]").expect("static template"),
            ),
        };
        let ticker = bar.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(200));
            loop {
                interval.tick().await;
                ticker.set_position(rows_read(&scans));
            }
        });
        Self { running: Some((bar, task)) }
    }

    pub fn finish(self) {
        if let Some((bar, task)) = self.running {
            task.abort();
            bar.finish_and_clear();
        }
    }
}
