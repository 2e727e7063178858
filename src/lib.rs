//! starflow: SQL over stellar catalogues with StarFlow normalizing-flow ages and masses as columns.
//!
//! Module map (see docs/ARCHITECTURE.md): `cli` (commands, on top: only `main` uses it), `session` (an engine and where results
//! go: used by `cli`, `catalog` and `shell`), `catalog` (the StarFlow catalogue job), `engine` (the DataFusion session),
//! `plan_rules` (physical optimizer rules), `executor` (the CPU runtime), `object_stores` (where data lives), `tables`
//! (`--table`), `formats` (input files checked against each other), `output` (where results go), `interrupt`
//! (signals), `progress`, `shell`, `survey` (the survey file and its input view), `catalog_info` (`models`/`functions`), `error` (user-facing errors and exit codes).

pub mod catalog;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod catalog_info;
pub mod cli;
pub mod engine;
pub mod error;
pub mod executor;
pub mod formats;
pub mod interrupt;
pub mod object_stores;
pub mod output;
pub mod plan_rules;
pub mod progress;
pub mod session;
pub mod shell;
pub mod survey;
pub mod tables;
