//! Staged writes to an object-store target, committed by copy-then-delete.
//!
//! The commit order keeps every moment readable: the target's `_SUCCESS` marker goes first (the
//! target is being changed), the new objects are copied in (their names are new, so nothing is
//! overwritten), then the objects they replace are deleted and `_SUCCESS` is written last. A
//! failure before the first copy leaves the target exactly as it was.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use super::{is_stale_staging, staging_done, staging_name, Commit, WriteSummary, SUCCESS_MARKER};

/// An object-store target of a write and where it is staged.
#[derive(Debug)]
pub struct RemoteStaged {
    store: Arc<dyn ObjectStore>,
    /// `scheme://bucket`, for messages.
    base: String,
    target: ObjectPath,
    staging: ObjectPath,
    commit: Commit,
}

fn store_error(what: &str, base: &str, path: &ObjectPath, e: object_store::Error) -> DataFusionError {
    let reason = crate::stores::explain_store_failure(&e.to_string())
        .map(|why| format!("{why} ({e})"))
        .unwrap_or_else(|| e.to_string());
    DataFusionError::Execution(format!("{what} {base}/{path}: {reason}"))
}

impl RemoteStaged {
    /// Stages a write to `url` on `store` under a new prefix next to the target, after removing
    /// stale staging of the same target. Returns where the statement should write instead.
    pub async fn prepare(url: Url, store: Arc<dyn ObjectStore>, commit: Commit) -> Result<(Self, String)> {
        let base = format!("{}://{}", url.scheme(), url.authority());
        let target = ObjectPath::from_url_path(url.path())
            .map_err(|e| DataFusionError::Plan(format!("invalid target {url}: {e}")))?;
        let parts: Vec<String> = target.parts().map(|p| p.as_ref().to_string()).collect();
        let name = parts.last().cloned().unwrap_or_else(|| "output".to_string());
        let parent: ObjectPath = parts[..parts.len().saturating_sub(1)].iter().map(String::as_str).collect();
        remove_stale_staging(store.as_ref(), &parent, &name).await;
        let staging = parent.join(staging_name(&name));
        let staged = if commit == Commit::File {
            format!("{base}/{}", staging.clone().join(name.as_str()))
        } else {
            format!("{base}/{}/", staging.clone().join("data"))
        };
        Ok((Self { store, base, target, staging, commit }, staged))
    }

    /// The statement succeeded: copies the staged objects into place, then removes the staging.
    pub async fn commit(self) -> Result<WriteSummary> {
        let result = self.commit_inner().await;
        self.remove_staging().await;
        result
    }

    pub fn staging_name(&self) -> &str {
        self.staging.filename().unwrap_or_default()
    }

    /// Deletes every staged object (best effort: what is left is removed by the next write).
    pub async fn remove_staging(&self) {
        remove_prefix(self.store.as_ref(), &self.staging).await;
        staging_done(self.staging_name());
    }

    async fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectMeta>> {
        self.store.list(Some(prefix)).try_collect().await.map_err(|e| store_error("cannot list", &self.base, prefix, e))
    }

    async fn commit_inner(&self) -> Result<WriteSummary> {
        let staged = self.list(&self.staging).await?;
        let summary = WriteSummary { files: staged.len(), bytes: staged.iter().map(|m| m.size).sum() };
        if self.commit == Commit::File {
            let from = self.staging.clone().join(self.target.filename().unwrap_or("output"));
            self.store
                .copy(&from, &self.target)
                .await
                .map_err(|e| store_error("cannot commit", &self.base, &self.target, e))?;
            return Ok(summary);
        }
        let data = self.staging.clone().join("data");
        // Where each staged object goes: the same path relative to the target.
        let mut moves = Vec::with_capacity(staged.len());
        for meta in &staged {
            let Some(relative) = meta.location.prefix_match(&data) else { continue };
            let relative: Vec<String> = relative.map(|p| p.as_ref().to_string()).collect();
            let destination: ObjectPath =
                self.target.parts().chain(relative.iter().map(|p| p.as_str().into())).collect();
            moves.push((meta.location.clone(), destination, relative));
        }
        // The objects the new ones replace: in the partitions written, or the whole target.
        let replaced_prefixes: BTreeSet<ObjectPath> = if self.commit == Commit::Append {
            BTreeSet::new()
        } else if self.commit == Commit::Partitions {
            moves
                .iter()
                .map(|(_, _, relative)| {
                    let dirs = &relative[..relative.len().saturating_sub(1)];
                    self.target.parts().chain(dirs.iter().map(|p| p.as_str().into())).collect()
                })
                .collect()
        } else {
            BTreeSet::from([self.target.clone()])
        };
        let success = self.target.clone().join(SUCCESS_MARKER);
        match self.store.delete(&success).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error("cannot remove", &self.base, &success, e)),
        }
        let new: BTreeSet<&ObjectPath> = moves.iter().map(|(_, to, _)| to).collect();
        let mut old = Vec::new();
        for prefix in &replaced_prefixes {
            for meta in self.list(prefix).await? {
                if !new.contains(&meta.location) && meta.location != success {
                    old.push(meta.location);
                }
            }
        }
        for (from, to, _) in &moves {
            self.store.copy(from, to).await.map_err(|e| store_error("cannot commit", &self.base, to, e))?;
        }
        for path in &old {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error("cannot remove the replaced object", &self.base, path, e)),
            }
        }
        self.store
            .put(&success, PutPayload::new())
            .await
            .map_err(|e| store_error("cannot write the success marker", &self.base, &success, e))?;
        Ok(summary)
    }
}

/// Deletes every object under `prefix`, ignoring failures.
async fn remove_prefix(store: &dyn ObjectStore, prefix: &ObjectPath) {
    let locations = store.list(Some(prefix)).map_ok(|meta| meta.location).boxed();
    let _ = store.delete_stream(locations).try_collect::<Vec<_>>().await;
}

/// Removes staging prefixes of target `name` under `parent` whose owner is gone.
async fn remove_stale_staging(store: &dyn ObjectStore, parent: &ObjectPath, name: &str) {
    let parent = (!parent.as_ref().is_empty()).then_some(parent);
    let Ok(listing) = store.list_with_delimiter(parent).await else { return };
    for prefix in listing.common_prefixes {
        if prefix.filename().is_some_and(|entry| is_stale_staging(entry, name)) {
            remove_prefix(store, &prefix).await;
        }
    }
}
