//! cxlake on an [Apache DataFusion Ballista](https://datafusion.apache.org/ballista/) cluster:
//! the same SQL and the same metric functions, planned by a scheduler and run by executors on
//! other machines.
//!
//! - [`scheduler::run`] and [`executor::run`] are Ballista's scheduler and executor with every
//!   cxlake function, the `cxlake.*` settings and cxlake's plan [`codec`]s (the CLI's
//!   `cxlake cluster scheduler|executor`).
//! - [`connect`] (or [`LakeBuilderClusterExt::build_on_cluster`]) builds a [`cxlake::Lake`] whose
//!   queries run on a cluster; [`standalone`] starts a whole cluster in-process.
//!
//! ```no_run
//! # async fn demo() -> cxlake::Result<()> {
//! use cxlake_cluster::LakeBuilderClusterExt;
//! let lake = cxlake::Lake::builder().with_sample_lake().build_on_cluster("df://localhost:50050").await?;
//! let batches = lake.query("SELECT channel, nps(score) FROM surveys GROUP BY channel").await?;
//! # Ok(()) }
//! ```

pub mod codec;
pub mod executor;
pub mod scheduler;
pub mod session;
pub mod standalone;

pub use session::{connect, LakeBuilderClusterExt, DEFAULT_SCHEDULER_PORT};
pub use standalone::standalone;

/// Ballista's errors as cxlake's.
fn ballista_error(e: ballista_core::error::BallistaError) -> cxlake::DataFusionError {
    cxlake::DataFusionError::External(Box::new(e))
}
