//! Staged writes to a local target, committed by renames within one file system.

use std::path::{Path, PathBuf};

use super::{is_stale_staging, staging_done, staging_name, Commit, WriteSummary, SUCCESS_MARKER};
use datafusion::common::{DataFusionError, Result};

/// A local target of a write and where it is staged.
#[derive(Debug)]
pub struct LocalStaged {
    target: PathBuf,
    staging: PathBuf,
    commit: Commit,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("{what} {}: {e}", path.display()))
}

impl LocalStaged {
    /// Stages a write to the local path `target` in a new staging directory next to it, after
    /// removing stale staging directories of the same target. Returns where the statement
    /// should write instead.
    pub fn prepare(target: PathBuf, commit: Commit) -> Result<(Self, String)> {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".to_string());
        let parent = target.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&parent).map_err(|e| io_error("cannot create the directory", &parent, e))?;
        remove_stale_staging(&parent, &name);
        let staging = parent.join(staging_name(&name));
        std::fs::create_dir_all(&staging).map_err(|e| io_error("cannot create the staging directory", &staging, e))?;
        let single_file = commit == Commit::File;
        let staged_target = if single_file { staging.join(&name) } else { staging.join("data") };
        let mut staged = staged_target.to_string_lossy().into_owned();
        if !single_file {
            std::fs::create_dir_all(&staged_target).map_err(|e| io_error("cannot create", &staged_target, e))?;
            staged.push('/');
        }
        Ok((Self { target, staging, commit }, staged))
    }

    /// The statement failed: the staged files go, the target stays as it was.
    pub fn abort(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        self.done();
    }

    fn done(&self) {
        if let Some(name) = self.staging.file_name() {
            staging_done(&name.to_string_lossy());
        }
    }

    /// The statement succeeded: moves the staged output into place.
    pub fn commit(self) -> Result<WriteSummary> {
        let result = self.commit_inner();
        let _ = std::fs::remove_dir_all(&self.staging);
        self.done();
        result
    }

    fn commit_inner(&self) -> Result<WriteSummary> {
        let trash = self.staging.join("replaced");
        if self.commit == Commit::File {
            let staged = self.staging.join(self.target.file_name().expect("a file name"));
            let summary = summarize(&staged)?;
            std::fs::rename(&staged, &self.target).map_err(|e| io_error("cannot commit", &self.target, e))?;
            return Ok(summary);
        }
        let data = self.staging.join("data");
        std::fs::create_dir_all(&data).map_err(|e| io_error("cannot create", &data, e))?;
        let summary = summarize(&data)?;
        if self.commit == Commit::Append {
            // New files join the table's: their names are new, so nothing is overwritten.
            for file in files_under(&data)? {
                let destination = self.target.join(file.strip_prefix(&data).expect("under the staging directory"));
                create_parent(&destination)?;
                std::fs::rename(&file, &destination).map_err(|e| io_error("cannot commit", &destination, e))?;
            }
            let _ = std::fs::remove_file(self.target.join(SUCCESS_MARKER));
        } else if self.commit == Commit::Partitions && self.target.is_dir() {
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
    let files = if path.is_dir() { files_under(path)? } else { vec![path.to_path_buf()] };
    let mut summary = WriteSummary { files: files.len(), bytes: 0 };
    for file in &files {
        summary.bytes += std::fs::metadata(file).map_err(|e| io_error("cannot read", file, e))?.len();
    }
    Ok(summary)
}

/// Every file under `root`, recursively.
fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| io_error("cannot read", root, e))? {
        let path = entry.map_err(|e| io_error("cannot read", root, e))?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
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
    for entry in entries.flatten() {
        if is_stale_staging(&entry.file_name().to_string_lossy(), name) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
