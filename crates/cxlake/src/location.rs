//! Where a table's data lives, parsed once so that every front end accepts the same spellings.
//!
//! A location is a Parquet file, a directory of Parquet files (read recursively; `key=value`
//! directories become partition columns) or a glob (whose `*` also matches across directory
//! levels, since directories are read recursively), given as a plain path or a URL: `file://`,
//! or an object store's (`s3://`, `gs://`, `az://`, `abfss://`, `http(s)://`; the store is set up
//! from the URL, see [`crate::stores`]).

use std::fmt;
use std::path::{Path, PathBuf};

use datafusion::common::{plan_err, DataFusionError, Result};
use url::Url;

/// A parsed table location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file, directory or glob (absolute path).
    Local { path: PathBuf, glob: bool },
    /// An object-store URL (`s3://bucket/prefix/`, `gs://`, `az://`, `abfss://`, `http(s)://`).
    Remote { url: Url },
}

const REMOTE_SCHEMES: &[&str] = &["s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl", "http", "https"];

impl Location {
    /// Parses a user-supplied location; relative paths are taken from the current directory.
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return plan_err!("empty table location: give a Parquet file, a directory or a glob");
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if scheme == "file" {
                let url = Url::parse(raw).map_err(|e| bad(raw, &e.to_string()))?;
                let path = url.to_file_path().map_err(|_| bad(raw, "not a local file URL"))?;
                return Ok(Self::local(path));
            }
            if REMOTE_SCHEMES.contains(&scheme.as_str()) {
                let url = Url::parse(raw).map_err(|e| bad(raw, &e.to_string()))?;
                return Ok(Self::Remote { url });
            }
            return Err(bad(
                raw,
                &format!("unknown scheme '{scheme}://' (use a path, file://, s3://, gs://, az:// or abfss://)"),
            ));
        }
        let path = Path::new(raw);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| bad(raw, &format!("cannot resolve the current directory: {e}")))?
                .join(path)
        };
        Ok(Self::local(path))
    }

    fn local(path: PathBuf) -> Self {
        let glob = path.to_string_lossy().contains(['*', '?', '[']);
        Self::Local { path, glob }
    }

    /// The location as DataFusion's listing tables take it: a directory ends with `/`.
    pub fn listing_url(&self) -> Result<String> {
        match self {
            Self::Local { path, glob: true } => Ok(path.to_string_lossy().into_owned()),
            Self::Local { path, glob: false } => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| DataFusionError::Plan(format!("table location {}: {e}", path.display())))?;
                let mut s = path.to_string_lossy().into_owned();
                if meta.is_dir() && !s.ends_with('/') {
                    s.push('/');
                }
                Ok(s)
            }
            // An object store cannot be asked cheaply whether a key is a "directory": a location
            // ending with `/`, or whose last segment has no extension, is one.
            Self::Remote { url } => {
                let mut s = url.to_string();
                let last = url.path().rsplit('/').next().unwrap_or("");
                let glob = s.contains(['*', '?', '[']);
                if !glob && !s.ends_with('/') && !last.contains('.') {
                    s.push('/');
                }
                Ok(s)
            }
        }
    }
}

fn bad(raw: &str, why: &str) -> DataFusionError {
    DataFusionError::Plan(format!("invalid table location '{raw}': {why}"))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { path, .. } => write!(f, "{}", path.display()),
            Self::Remote { url } => write!(f, "{url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_globs_and_urls() {
        assert!(matches!(Location::parse("/data/x.parquet").unwrap(), Location::Local { glob: false, .. }));
        assert!(matches!(Location::parse("/data/*.parquet").unwrap(), Location::Local { glob: true, .. }));
        assert_eq!(
            Location::parse("file:///data/events/").unwrap(),
            Location::Local { path: PathBuf::from("/data/events/"), glob: false }
        );
        assert!(matches!(Location::parse("s3://bucket/events/").unwrap(), Location::Remote { .. }));
        assert!(matches!(Location::parse("abfss://c@acct.dfs.core.windows.net/x").unwrap(), Location::Remote { .. }));
        let err = Location::parse("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unknown scheme 'ftp://'"), "{err}");
        assert!(Location::parse("  ").is_err());
        let relative = Location::parse("data/x.parquet").unwrap();
        assert!(matches!(relative, Location::Local { ref path, .. } if path.is_absolute()));
    }

    #[test]
    fn remote_directories_end_with_a_slash() {
        let listing = |raw: &str| Location::parse(raw).unwrap().listing_url().unwrap();
        assert_eq!(listing("s3://bucket/events"), "s3://bucket/events/");
        assert_eq!(listing("s3://bucket/events/"), "s3://bucket/events/");
        assert_eq!(listing("s3://bucket"), "s3://bucket/");
        assert_eq!(listing("gs://bucket/x/part-0.parquet"), "gs://bucket/x/part-0.parquet");
        assert_eq!(listing("az://container/x/*.parquet"), "az://container/x/*.parquet");
    }
}
