//! The cxlake engine: customer-experience and product metrics in SQL over Parquet lakes.
//!
//! [`Lake`] is the one entry point for every front end (the CLI and REPL, batch jobs, notebook
//! bindings): it builds a DataFusion session with every cxlake function and `cxlake.*` setting
//! registered, registers tables from locations, runs SQL and hands back Arrow record batches or
//! streams. [`format`] renders results in the CLI's output formats.
//!
//! ```no_run
//! # async fn demo() -> datafusion::error::Result<()> {
//! let lake = cxlake::Lake::builder().with_sample_lake().build().await?;
//! let batches = lake.query("SELECT channel, nps(score) FROM surveys GROUP BY channel").await?;
//! # Ok(()) }
//! ```

/// The README's Rust example is compiled as a doctest, so it cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod format;
pub mod functions;
pub mod job;
pub mod lake;
pub mod location;
pub mod sample;
pub mod statements;
pub mod stores;
pub mod write;

pub use cxlake_udfs as udfs;
pub use datafusion;
pub use datafusion::arrow;
pub use datafusion::error::{DataFusionError, Result};
pub use format::OutputFormat;
pub use functions::{cxlake_functions, FunctionInfo};
pub use lake::{Lake, LakeBuilder, StatementOutput};
pub use location::Location;
pub use stores::StoreOptions;
pub use write::WriteSummary;
