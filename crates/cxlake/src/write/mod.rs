//! Writing back to the lake without half-written output: `COPY ... TO` is written under a staging
//! prefix next to its target and committed only when the whole statement has succeeded.
//!
//! A single-file target is replaced by its new file; a directory target written with
//! `PARTITIONED BY` has exactly the partitions the statement wrote replaced (so a nightly job that
//! rewrites one day can run again and leave exactly one run's output); a directory target without
//! partitions is replaced as a whole. A `_SUCCESS` marker is written into a directory target last,
//! the convention Spark and Hadoop committers use. A statement that fails, or a process that is
//! killed, before the commit leaves the target as it was and only its staging prefix behind, which
//! the next write to the same target removes.
//!
//! On local disk the commit is a few renames within one file system ([`local`]); object stores
//! have no rename, so there the staged objects are copied into place and then deleted
//! ([`remote`]), with the target's `_SUCCESS` marker removed first and
//! written last so a reader can tell a finished write from one in progress.

mod local;
mod remote;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::common::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::sql::parser::CopyToStatement;
use url::Url;

use local::LocalStaged;
use remote::RemoteStaged;

/// What a committed write produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub files: usize,
    pub bytes: u64,
}

/// The prefix of staging directories, next to their target. Names starting with `.` are skipped
/// when a lake directory is registered.
pub const STAGING_PREFIX: &str = ".cxlake-staging-";

/// The marker written into a directory target after a successful commit.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Staging left by a process on another machine is removed once it is this old (its owner
/// cannot be checked from here).
const FOREIGN_STAGING_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Staging names of this process's statements that are still running: this process's other
/// staging (of a statement whose clean-up could not reach its object store) is stale.
static ACTIVE_STAGING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// How a staged write replaces what its target held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// A single file (`COPY ... TO 'out.parquet'`), replaced by its new one.
    File,
    /// A directory, replaced as a whole.
    Directory,
    /// A directory written `PARTITIONED BY`: the partitions written are replaced, others kept.
    Partitions,
    /// A table's directory that gains the new files (`INSERT INTO`).
    Append,
}

/// A statement's staged target, committed after the statement has succeeded.
#[derive(Debug)]
pub enum StagedCopy {
    Local(LocalStaged),
    Remote(RemoteStaged),
}

impl StagedCopy {
    /// Points `copy` at a new staging location next to its target (removing stale staging of
    /// the same target first).
    pub async fn prepare(copy: &mut CopyToStatement, runtime: &RuntimeEnv) -> Result<Option<Self>> {
        let last = copy.target.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let commit = if !copy.partitioned_by.is_empty() {
            Commit::Partitions
        } else if !copy.target.ends_with('/') && last.contains('.') {
            Commit::File
        } else {
            Commit::Directory
        };
        let Some((staged, target)) = Self::stage(&copy.target, commit, runtime).await? else { return Ok(None) };
        copy.target = target;
        Ok(Some(staged))
    }

    /// Stages rows added to the table whose directory is `table_url`; returns where to write them.
    pub async fn prepare_append(table_url: &str, runtime: &RuntimeEnv) -> Result<Option<(Self, String)>> {
        Self::stage(table_url, Commit::Append, runtime).await
    }

    /// Stages a write to `target` (a path or URL); `None` for a URL that is neither local nor an
    /// object store's.
    async fn stage(target: &str, commit: Commit, runtime: &RuntimeEnv) -> Result<Option<(Self, String)>> {
        let local = match target.split_once("://") {
            None => Some(std::path::absolute(target).unwrap_or_else(|_| PathBuf::from(target))),
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("file") => {
                Url::parse(target).ok().and_then(|u| u.to_file_path().ok())
            }
            Some(_) => None,
        };
        if let Some(path) = local {
            let (staged, target) = LocalStaged::prepare(path, commit)?;
            return Ok(Some((Self::Local(staged), target)));
        }
        let Ok(url) = Url::parse(target) else { return Ok(None) };
        let store = runtime.object_store_registry.get_store(&url)?;
        let (staged, target) = RemoteStaged::prepare(url, store, commit).await?;
        Ok(Some((Self::Remote(staged), target)))
    }

    /// The statement succeeded: moves the staged output into place.
    pub async fn commit(self) -> Result<WriteSummary> {
        match self {
            Self::Local(staged) => staged.commit(),
            Self::Remote(staged) => staged.commit().await,
        }
    }

    /// The statement failed or was cancelled: the staged output goes, the target stays as it
    /// was. On an object store the deletion runs in the background (it needs the network; if it
    /// fails, the next write to the target removes the staging).
    pub fn abort(self) {
        match self {
            Self::Local(staged) => staged.abort(),
            Self::Remote(staged) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { staged.remove_staging().await });
                } else {
                    staging_done(staged.staging_name());
                }
            }
        }
    }
}

/// The name of a new staging directory for target `name`: the target's name, this process and
/// machine (so a later run can tell whether the owner is gone) and the time, separated by `.`
/// (which object stores keep as it is in keys).
fn staging_name(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let staging = format!("{STAGING_PREFIX}{name}.{}.{nanos}.{}", std::process::id(), host_name());
    ACTIVE_STAGING.lock().expect("staging registry").insert(staging.clone());
    staging
}

/// The statement that owned `staging` has finished (committed or aborted).
fn staging_done(staging: &str) {
    ACTIVE_STAGING.lock().expect("staging registry").remove(staging);
}

/// Whether `entry` (a directory or prefix name) is staging of target `name` whose owner is gone:
/// a process of this machine that no longer runs, or one of another machine a day ago.
fn is_stale_staging(entry: &str, name: &str) -> bool {
    let Some(rest) = entry.strip_prefix(STAGING_PREFIX) else { return false };
    let mut fields = rest.rsplitn(4, '.');
    let (Some(host), Some(nanos), Some(pid), Some(owner_name)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let (Ok(nanos), Ok(pid)) = (nanos.parse::<u128>(), pid.parse::<u32>()) else { return false };
    if owner_name != name {
        return false;
    }
    if host == host_name() {
        if pid == std::process::id() {
            return !ACTIVE_STAGING.lock().expect("staging registry").contains(entry);
        }
        return !process_alive(pid);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    now.saturating_sub(nanos) > FOREIGN_STAGING_MAX_AGE.as_nanos()
}

/// This machine's name, with characters other than letters, digits, `-` and `_` replaced.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "localhost".to_string());
    raw.trim().chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') { c } else { '_' }).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_tell_their_owner() {
        let mine = staging_name("nps");
        assert!(mine.starts_with(".cxlake-staging-nps."), "{mine}");
        // This process runs this statement: its staging is not stale, for this target or any other.
        assert!(!is_stale_staging(&mine, "nps"));
        assert!(!is_stale_staging(&staging_name("nps-2"), "nps"));
        // Once the statement is over, what it left (a clean-up that failed) is.
        staging_done(&mine);
        assert!(is_stale_staging(&mine, "nps"));
        // A process that cannot exist on this machine left it: stale, but only for its own target.
        let gone = format!("{STAGING_PREFIX}nps.4294967295.1.{}", host_name());
        assert!(is_stale_staging(&gone, "nps"));
        assert!(!is_stale_staging(&gone, "nps-2"));
        assert!(!is_stale_staging(&gone, "np"));
        // Another machine's: stale only when a day old.
        assert!(is_stale_staging(&format!("{STAGING_PREFIX}nps.1.1.elsewhere"), "nps"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        assert!(!is_stale_staging(&format!("{STAGING_PREFIX}nps.1.{now}.elsewhere"), "nps"));
        assert!(!is_stale_staging("nps", "nps"));
        assert!(!is_stale_staging(&format!("{STAGING_PREFIX}nps.x.1.h"), "nps"));
        // A target whose name has dots.
        let file = staging_name("answer.parquet");
        staging_done(&file);
        assert!(is_stale_staging(&file, "answer.parquet") && !is_stale_staging(&file, "parquet"));
    }
}
