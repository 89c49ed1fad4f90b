//! Where a table's data lives, parsed once so that every front end accepts the same spellings.
//!
//! A location is a Parquet file, a directory of Parquet files (read recursively; `key=value`
//! directories become partition columns) or a glob (whose `*` also matches across directory
//! levels, since directories are read recursively), given as a plain path or a URL. URLs with an
//! object-store scheme are recognised here so that stores can be registered from them; this
//! build reads local files only and says so when given another scheme.

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
            Self::Remote { url } => plan_err!(
                "table location {url}: object stores ({}://) are not supported by this build yet; \
                 copy the data to a local directory or mount it",
                url.scheme()
            ),
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
    fn remote_locations_say_they_are_not_supported_yet() {
        let err = Location::parse("s3://bucket/events/").unwrap().listing_url().unwrap_err();
        assert!(err.to_string().contains("s3://"), "{err}");
    }
}
