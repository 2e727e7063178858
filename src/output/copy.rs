//! `COPY ... TO` through the same atomic path as `-o`: DataFusion writes into a staging area beside the target
//! (it would complete a partly written file when the query fails), and only a COPY that succeeded is moved into place.
//! The target is interpreted as `-o`'s ([`super::target`]): object keys literally, symlinks followed, devices refused.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{LogicalPlan, dml::CopyTo};

use super::staging::StagingArea;
use super::target::{DirTarget, ObjectUrl, Target};
use crate::error::CliError;

/// A COPY written into a staging area, to be moved into place once it succeeded.
pub struct StagedCopy {
    area: StagingArea,
    /// The single file written (`(staged name, target name)`); `None`: every file of the area (a directory COPY).
    file: Option<(String, String)>,
}

impl StagedCopy {
    /// Install the COPY's files if `result` (of running it) is a success, else drop them.
    pub async fn settle<T>(self, result: Result<T, CliError>) -> Result<T, CliError> {
        if result.is_err() {
            self.area.discard().await;
            return result;
        }
        let files = match self.area.files().await {
            Ok(files) => files,
            Err(e) => {
                self.area.discard().await;
                return Err(e);
            }
        };
        // Every file of a directory COPY; the one file (if DataFusion wrote it) under the target's name.
        let moves: Vec<(String, String)> = match self.file {
            Some((staged, target)) => files.into_iter().filter(|f| *f == staged).map(|f| (f, target.clone())).collect(),
            None => files.into_iter().map(|f| (f.clone(), f)).collect(),
        };
        self.area.install(&moves).await.and(result)
    }
}

/// The file name extension of a path's last part, as DataFusion sees it.
fn extension(text: &str) -> Option<&str> {
    let last = text.rsplit('/').next()?;
    last.rsplit_once('.').map(|(_, ext)| ext).filter(|ext| !ext.is_empty())
}

/// Point the COPY in `plan` (if any) at a staging area.
pub fn stage(plan: LogicalPlan, runtime: &RuntimeEnv) -> Result<(LogicalPlan, Option<StagedCopy>), CliError> {
    let mut staged = None;
    let rewritten = plan.transform_up(|node| {
        let LogicalPlan::Copy(copy) = node else { return Ok(Transformed::no(node)) };
        let (copy, area) = stage_copy(copy, runtime).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        staged = Some(area);
        Ok(Transformed::yes(LogicalPlan::Copy(copy)))
    });
    let plan = rewritten.map_err(CliError::from)?.data;
    Ok((plan, staged))
}

fn stage_copy(copy: CopyTo, runtime: &RuntimeEnv) -> Result<(CopyTo, StagedCopy), CliError> {
    let text = copy.output_url.as_str();
    // DataFusion's rule: one file when asked, or when the target has an extension and no trailing '/'.
    let single = match copy.options.get("single_file_output").map(|v| v.trim()) {
        Some("true") => true,
        Some("false") => false,
        _ => !text.ends_with('/') && extension(text).is_some(),
    };
    let (area, file) = if single {
        let (dir, name) = match Target::parse(text)? {
            Target::File(path) => {
                let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| "/".into());
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (DirTarget::Local(dir), name)
            }
            Target::Object(url) => {
                let (parent, name) = match url.key.as_ref().rsplit_once('/') {
                    Some((parent, name)) => (parent.to_string(), name.to_string()),
                    None => (String::new(), url.key.as_ref().to_string()),
                };
                let parent = object_store::path::Path::parse(parent).map_err(|e| CliError::usage(e.to_string()))?;
                (DirTarget::Object(ObjectUrl { store: url.store, key: parent }), name)
            }
            Target::Stdout | Target::Stderr | Target::Stream(_) => {
                return Err(CliError::usage(format!("COPY TO '{text}': COPY writes files; use -o for stdout or a stream")));
            }
        };
        // The staged name goes into a URL: only a plain extension is kept (the format is already decided).
        let staged = match extension(&name).filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric())) {
            Some(ext) => format!("copy.{ext}"),
            None => "copy".to_string(),
        };
        (StagingArea::create(&dir, runtime)?, Some((staged, name)))
    } else {
        (StagingArea::create(&DirTarget::parse(text)?, runtime)?, None)
    };
    let url = match &file {
        Some((staged, _)) => format!("{}{staged}", area.url()),
        None => area.url(),
    };
    let mut options = copy.options;
    options.insert("single_file_output".to_string(), single.to_string());
    Ok((CopyTo::new(copy.input, url, copy.partition_by, copy.file_type, options), StagedCopy { area, file }))
}
