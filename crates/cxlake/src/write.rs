//! Writing back to the lake without half-written output: `COPY ... TO` a local target is written
//! under a staging directory next to the target and committed only when the whole statement has
//! succeeded.
//!
//! The commit is a sequence of renames within one file system: a single-file target is replaced
//! by its new file; a directory target written with `PARTITIONED BY` has exactly the partitions
//! the statement wrote replaced (so a nightly job that rewrites one day can run again and leave
//! exactly one run's output); a directory target without partitions is replaced as a whole. A
//! `_SUCCESS` marker is written into a directory target last, the convention Spark and Hadoop
//! committers use. A statement that fails, or a process that is killed, before the commit leaves
//! the target as it was and only its staging directory behind, which the next write to the same
//! target removes.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::parser::CopyToStatement;

/// What a committed write produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub files: usize,
    pub bytes: u64,
}

/// The prefix of staging directories, next to their target. Names starting with `.` are skipped
/// when a lake directory is registered.
const STAGING_PREFIX: &str = ".cxlake-staging-";

/// The marker written into a directory target after a successful commit.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// A local target of `COPY ... TO` and where it is staged.
#[derive(Debug)]
pub struct StagedCopy {
    target: PathBuf,
    staging: PathBuf,
    single_file: bool,
    partitioned: bool,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("{what} {}: {e}", path.display()))
}

/// The local path of a COPY target, or `None` for a URL of another scheme.
fn local_target(target: &str) -> Option<PathBuf> {
    match target.split_once("://") {
        None => Some(std::path::absolute(target).unwrap_or_else(|_| PathBuf::from(target))),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("file") => {
            url::Url::parse(target).ok().and_then(|u| u.to_file_path().ok())
        }
        Some(_) => None,
    }
}

impl StagedCopy {
    /// Stages `copy` when its target is on local disk: the statement's target is pointed at a new
    /// staging directory, and stale staging directories of the same target are removed first.
    pub fn prepare(copy: &mut CopyToStatement) -> Result<Option<Self>> {
        let Some(target) = local_target(&copy.target) else {
            return Ok(None);
        };
        let partitioned = !copy.partitioned_by.is_empty();
        let ends_with_slash = copy.target.ends_with('/');
        let single_file = !partitioned && !ends_with_slash && target.extension().is_some();
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".to_string());
        let parent = target.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&parent).map_err(|e| io_error("cannot create the directory", &parent, e))?;
        remove_stale_staging(&parent, &name);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let staging = parent.join(format!("{STAGING_PREFIX}{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| io_error("cannot create the staging directory", &staging, e))?;
        let staged_target = if single_file { staging.join(&name) } else { staging.join("data") };
        let mut staged = staged_target.to_string_lossy().into_owned();
        if !single_file {
            staged.push('/');
        }
        copy.target = staged;
        Ok(Some(Self { target, staging, single_file, partitioned }))
    }

    /// The statement failed: the staged files go, the target stays as it was.
    pub fn abort(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }

    /// The statement succeeded: moves the staged output into place.
    pub fn commit(self) -> Result<WriteSummary> {
        let result = self.commit_inner();
        let _ = std::fs::remove_dir_all(&self.staging);
        result
    }

    fn commit_inner(&self) -> Result<WriteSummary> {
        let trash = self.staging.join("replaced");
        if self.single_file {
            let staged = self.staging.join(self.target.file_name().expect("a file name"));
            let summary = summarize(&staged)?;
            std::fs::rename(&staged, &self.target).map_err(|e| io_error("cannot commit", &self.target, e))?;
            return Ok(summary);
        }
        let data = self.staging.join("data");
        std::fs::create_dir_all(&data).map_err(|e| io_error("cannot create", &data, e))?;
        let summary = summarize(&data)?;
        if self.partitioned && self.target.is_dir() {
            // Replace exactly the partitions written: the leaf directories of the staged tree.
            for leaf in leaf_dirs(&data)? {
                let relative = leaf.strip_prefix(&data).expect("under the staging directory");
                let destination = self.target.join(relative);
                if destination.exists() {
                    let parked = trash.join(relative);
                    create_parent(&parked)?;
                    std::fs::rename(&destination, &parked).map_err(|e| io_error("cannot replace", &destination, e))?;
                }
                create_parent(&destination)?;
                std::fs::rename(&leaf, &destination).map_err(|e| io_error("cannot commit", &destination, e))?;
            }
            let _ = std::fs::remove_file(self.target.join(SUCCESS_MARKER));
        } else {
            if self.target.exists() {
                std::fs::create_dir_all(&trash).map_err(|e| io_error("cannot create", &trash, e))?;
                std::fs::rename(&self.target, trash.join("target"))
                    .map_err(|e| io_error("cannot replace", &self.target, e))?;
            }
            std::fs::rename(&data, &self.target).map_err(|e| io_error("cannot commit", &self.target, e))?;
        }
        std::fs::write(self.target.join(SUCCESS_MARKER), b"")
            .map_err(|e| io_error("cannot write the success marker in", &self.target, e))?;
        Ok(summary)
    }
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e)),
        None => Ok(()),
    }
}

/// Files and bytes under `path` (a file or a directory tree).
fn summarize(path: &Path) -> Result<WriteSummary> {
    let meta = std::fs::metadata(path).map_err(|e| io_error("cannot read", path, e))?;
    if meta.is_file() {
        return Ok(WriteSummary { files: 1, bytes: meta.len() });
    }
    let mut summary = WriteSummary::default();
    for entry in std::fs::read_dir(path).map_err(|e| io_error("cannot read", path, e))? {
        let entry = entry.map_err(|e| io_error("cannot read", path, e))?;
        let inner = summarize(&entry.path())?;
        summary.files += inner.files;
        summary.bytes += inner.bytes;
    }
    Ok(summary)
}

/// Directories under `root` that hold files (the partitions written).
fn leaf_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut leaves = Vec::new();
    let mut has_files = false;
    for entry in std::fs::read_dir(root).map_err(|e| io_error("cannot read", root, e))? {
        let path = entry.map_err(|e| io_error("cannot read", root, e))?.path();
        if path.is_dir() {
            leaves.extend(leaf_dirs(&path)?);
        } else {
            has_files = true;
        }
    }
    if has_files {
        leaves.push(root.to_path_buf());
    }
    leaves.sort();
    Ok(leaves)
}

/// Removes staging directories of `name` under `parent` left by processes that are gone.
fn remove_stale_staging(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let prefix = format!("{STAGING_PREFIX}{name}-");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_none_or(|pid| !process_alive(pid)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Without /proc the owner cannot be checked: keep the directory (it may be in use).
        true
    }
}
