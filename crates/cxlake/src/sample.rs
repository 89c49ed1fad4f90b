//! The built-in sample lake: a few MB of realistic Parquet (surveys, tickets, subscriptions,
//! orders, a hive-partitioned clickstream) shipped with cxlake so that a new user can query
//! something before pointing it at their own lake.

use std::path::PathBuf;

use datafusion::common::{plan_err, Result};

/// Environment variable that points cxlake at another copy of the sample lake.
pub const SAMPLE_LAKE_ENV: &str = "CXLAKE_SAMPLE_LAKE";

/// Where the sample lake lives: `$CXLAKE_SAMPLE_LAKE` when set, else the `sample-data/lake`
/// directory of the source tree this binary was built from.
pub fn sample_lake_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(SAMPLE_LAKE_ENV) {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return Ok(dir);
        }
        return plan_err!("{SAMPLE_LAKE_ENV}={} is not a directory", dir.display());
    }
    let built_in = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/lake"));
    match built_in.canonicalize() {
        Ok(dir) if dir.is_dir() => Ok(dir),
        _ => plan_err!(
            "the built-in sample lake is not at {} (this binary was moved away from its source tree); \
             set {SAMPLE_LAKE_ENV} to a copy of sample-data/lake, or pass --table/--lake",
            built_in.display()
        ),
    }
}
