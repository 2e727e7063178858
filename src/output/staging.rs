//! Outputs of several files (the catalogue's three, a `COPY` to a directory): written into a hidden staging area
//! beside their directory, then moved in together under a lock, so that a failed run leaves the previous files as
//! they were and concurrent runs never mix their files.
//!
//! Local: the area is `DIR/.starflow-PID-N.staging/`; files are renamed into `DIR` (atomic, same file system), each
//! replaced file first hard-linked into the area so that a failed move can be undone. Object stores: the area is the
//! prefix `PREFIX/.starflow-PID-N.staging/`; files are copied into place (S3 copies are atomic per object, up to
//! 5 GB), each replaced object first copied into the area. The lock is the directory itself (`flock` on it: nothing is
//! left in it) or the object `PREFIX/.starflow.lock` (created only if absent, deleted after).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use datafusion::execution::runtime_env::RuntimeEnv;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

use super::target::{DirTarget, ObjectUrl};
use super::{MadeDirs, OutputFile, create_hidden, store_of};
use crate::error::CliError;
use crate::interrupt::Staged;

/// The lock object of an object-store prefix.
const LOCK: &str = ".starflow.lock";
/// A lock object older than this was left by a run that died: installing takes seconds.
const STALE_LOCK: Duration = Duration::from_secs(600);
/// How long a run waits for another run's install.
const LOCK_WAIT: Duration = Duration::from_secs(900);
/// Replaced files are kept here inside the area until the install is complete.
const PREVIOUS: &str = "previous";

/// A hidden staging area beside an output directory.
pub struct StagingArea {
    place: Area,
    /// Set once the area is installed or discarded; a local area still there on drop is removed.
    settled: bool,
    _staged: Staged,
}

enum Area {
    /// `made`: the directories made for the area, removed again if nothing is installed.
    Local { dir: PathBuf, stage: PathBuf, made: MadeDirs },
    Store { store: Arc<dyn ObjectStore>, url: ObjectUrl, stage: StorePath },
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::output(format!("{what}: {e}"))
}

impl StagingArea {
    pub fn create(target: &DirTarget, runtime: &RuntimeEnv) -> Result<Self, CliError> {
        let place = match target {
            DirTarget::Local(dir) => {
                let made = MadeDirs::create(dir).map_err(|e| failed(&dir.display().to_string(), e))?;
                let ((), stage) = create_hidden(dir, "staging", |p| std::fs::create_dir(p))
                    .map_err(|e| failed(&dir.display().to_string(), e))?;
                Area::Local { dir: dir.clone(), stage, made }
            }
            DirTarget::Object(url) => {
                let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
                let name = format!(".starflow-{}-{nanos}.staging", std::process::id());
                Area::Store { store: store_of(url, runtime)?, url: url.clone(), stage: under(&url.key, &name)? }
            }
        };
        Ok(Self { place, settled: false, _staged: Staged::new() })
    }

    /// A file of the area (a plain name), to write with [`OutputFile::stage`].
    pub fn file(&self, name: &str) -> OutputFile {
        match &self.place {
            Area::Local { stage, .. } => OutputFile::local(stage.join(name), name),
            Area::Store { store, stage, .. } => {
                OutputFile::in_store(Arc::clone(store), StorePath::from_iter(stage.parts().chain([name.into()])), name)
            }
        }
    }

    /// The area as a directory URL DataFusion parses back to it exactly (percent-encoded, ending in `/`).
    pub fn url(&self) -> String {
        match &self.place {
            Area::Local { stage, .. } => url::Url::from_directory_path(stage).expect("an absolute path").to_string(),
            Area::Store { url, stage, .. } => {
                let mut base = url.store.clone();
                base.path_segments_mut().expect("a bucket URL").clear().extend(stage.parts()).push("");
                base.to_string()
            }
        }
    }

    /// The files written into the area, as paths relative to it.
    pub async fn files(&self) -> Result<Vec<String>, CliError> {
        match &self.place {
            Area::Local { stage, .. } => {
                let mut files = Vec::new();
                walk(stage, stage, &mut files).map_err(|e| failed(&stage.display().to_string(), e))?;
                Ok(files)
            }
            Area::Store { store, stage, .. } => {
                let listed: Vec<_> = store.list(Some(stage)).try_collect().await.map_err(|e| failed(stage.as_ref(), e))?;
                Ok(listed
                    .iter()
                    .filter_map(|m| m.location.prefix_match(stage).map(|parts| parts.map(|p| p.as_ref().to_string())))
                    .map(|parts| parts.collect::<Vec<_>>().join("/"))
                    .collect())
            }
        }
    }

    /// Move the area's files `(staged, final)` into the directory, all or none, under the directory's lock; then
    /// remove the area.
    pub async fn install(mut self, moves: &[(String, String)]) -> Result<(), CliError> {
        let installed = match &self.place {
            Area::Local { dir, stage, .. } => tokio::task::block_in_place(|| install_local(dir, stage, moves)),
            Area::Store { store, url, stage } => install_store(store.as_ref(), &url.key, stage, moves).await,
        };
        if installed.is_ok() {
            if let Area::Local { made, .. } = &mut self.place {
                made.keep();
            }
        }
        self.remove().await;
        installed
    }

    /// Remove the area and everything in it; nothing of it reaches the directory.
    pub async fn discard(mut self) {
        self.remove().await;
    }

    async fn remove(&mut self) {
        self.settled = true;
        match &self.place {
            Area::Local { .. } => self.remove_local(),
            Area::Store { store, stage, .. } => {
                // Listed raw: the area's own files are below a hidden prefix, but not hidden below it.
                let locations = store.list(Some(stage)).map_ok(|m| m.location).boxed();
                let _ = store.delete_stream(locations).try_collect::<Vec<_>>().await;
            }
        }
    }
}

impl StagingArea {
    /// Remove a local area, and the directories made for it unless something was installed in them.
    fn remove_local(&mut self) {
        if let Area::Local { stage, made, .. } = &mut self.place {
            let _ = std::fs::remove_dir_all(stage);
            made.remove();
        }
    }
}

impl Drop for StagingArea {
    fn drop(&mut self) {
        if !self.settled {
            self.remove_local();
        }
    }
}

/// `base/relative` with `relative`'s text as it is (a key is literal; `Path::join` would percent-encode it).
fn under(base: &StorePath, relative: &str) -> Result<StorePath, CliError> {
    let path = if base.as_ref().is_empty() { relative.to_string() } else { format!("{base}/{relative}") };
    StorePath::parse(&path).map_err(|e| failed(&path, e))
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            files.push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn install_local(dir: &Path, stage: &Path, moves: &[(String, String)]) -> Result<(), CliError> {
    // The directory is its own lock, released when `lock` is dropped. A file system that cannot lock (some network
    // file systems refuse flock on a directory) installs unlocked.
    let lock = std::fs::File::open(dir).map_err(|e| failed(&dir.display().to_string(), e))?;
    match lock.lock() {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOLCK | libc::EOPNOTSUPP)) => {}
        Err(e) => return Err(failed(&dir.display().to_string(), e)),
    }
    let previous = stage.join(PREVIOUS);
    // (final path, its previous version kept in the area, if it had one)
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for (from, to) in moves {
        let (source, dest, saved) = (stage.join(from), dir.join(to), previous.join(to));
        let step = (|| -> std::io::Result<Option<PathBuf>> {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let kept = match std::fs::symlink_metadata(&dest) {
                Ok(_) => {
                    std::fs::create_dir_all(saved.parent().unwrap_or(&previous))?;
                    std::fs::hard_link(&dest, &saved).or_else(|_| std::fs::copy(&dest, &saved).map(drop))?;
                    Some(saved)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            std::fs::rename(&source, &dest)?;
            Ok(kept)
        })();
        match step {
            Ok(kept) => done.push((dest, kept)),
            Err(e) => {
                for (dest, kept) in done.into_iter().rev() {
                    let _ = match kept {
                        Some(saved) => std::fs::rename(saved, &dest),
                        None => std::fs::remove_file(&dest),
                    };
                }
                return Err(failed(&dir.join(to).display().to_string(), e));
            }
        }
    }
    Ok(())
}

async fn install_store(
    store: &dyn ObjectStore,
    prefix: &StorePath,
    stage: &StorePath,
    moves: &[(String, String)],
) -> Result<(), CliError> {
    let lock = StoreLock::take(store, under(prefix, LOCK)?).await?;
    let mut done: Vec<(StorePath, Option<StorePath>)> = Vec::new();
    let mut outcome = Ok(());
    for (from, to) in moves {
        let (source, dest, saved) = (under(stage, from)?, under(prefix, to)?, under(stage, &format!("{PREVIOUS}/{to}"))?);
        let step = async {
            let kept = match store.copy(&dest, &saved).await {
                Ok(()) => Some(saved),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            store.copy(&source, &dest).await.map(|()| kept)
        };
        match step.await {
            Ok(kept) => done.push((dest, kept)),
            Err(e) => {
                for (dest, kept) in done.drain(..).rev() {
                    let _ = match kept {
                        Some(saved) => store.copy(&saved, &dest).await,
                        None => store.delete(&dest).await,
                    };
                }
                outcome = Err(failed(dest.as_ref(), e));
                break;
            }
        }
    }
    lock.release(store).await;
    outcome
}

/// A lock object, created only if absent; one left by a run that died is taken over after [`STALE_LOCK`].
struct StoreLock(Option<StorePath>);

impl StoreLock {
    async fn take(store: &dyn ObjectStore, path: StorePath) -> Result<Self, CliError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            let owner = format!("starflow pid {}", std::process::id());
            let create = PutOptions { mode: PutMode::Create, ..Default::default() };
            match store.put_opts(&path, owner.into(), create).await {
                Ok(_) => return Ok(Self(Some(path))),
                // A store without conditional writes cannot hold a lock: install without one.
                Err(object_store::Error::NotImplemented { .. }) => return Ok(Self(None)),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(failed(path.as_ref(), e)),
            }
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
            let age = store.head(&path).await.ok().map(|m| now - m.last_modified.timestamp());
            if age.is_some_and(|age| age > STALE_LOCK.as_secs() as i64) {
                let _ = store.delete(&path).await;
            } else if std::time::Instant::now() > deadline {
                return Err(CliError::output(format!(
                    "another run is installing its files beside {path}; if none is, delete that object"
                )));
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn release(self, store: &dyn ObjectStore) {
        if let Some(path) = self.0 {
            let _ = store.delete(&path).await;
        }
    }
}
