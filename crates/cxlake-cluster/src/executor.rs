//! A Ballista executor that runs cxlake's functions with the client's settings.

use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::RuntimeProducer;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use cxlake::datafusion::prelude::SessionConfig;
use cxlake::Result;

use crate::ballista_error;
use crate::codec::{CxlakeLogicalCodec, CxlakePhysicalCodec};
use crate::session::{cluster_config, scheduler_endpoint, server_session, server_stores};

/// The address a node listens on unless told otherwise: this machine only.
pub const DEFAULT_BIND_HOST: &str = "127.0.0.1";
/// The Arrow Flight port of an executor unless told otherwise (Ballista's).
pub const DEFAULT_FLIGHT_PORT: u16 = 50051;
/// The gRPC port of an executor unless told otherwise (Ballista's).
pub const DEFAULT_GRPC_PORT: u16 = 50052;
/// Seconds between an executor's heartbeats unless told otherwise.
pub const DEFAULT_HEARTBEAT_SECONDS: u64 = 5;

/// The scheduler an executor serves unless told otherwise: one on this machine's default port.
pub fn default_scheduler_url() -> String {
    format!("df://localhost:{}", crate::DEFAULT_SCHEDULER_PORT)
}

/// Where an executor listens, which scheduler it serves, and how much work it takes.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler to register with, as `df://HOST:PORT`.
    pub scheduler: String,
    /// The address to listen on (0.0.0.0 for every interface).
    pub bind_host: String,
    /// The host name the scheduler and other executors reach this one by (default: bind_host).
    pub external_host: Option<String>,
    /// The Arrow Flight port other executors and clients fetch results from.
    pub port: u16,
    /// The gRPC port the scheduler hands tasks to.
    pub grpc_port: u16,
    /// How many tasks run at once; 0 means one per core.
    pub vcores: usize,
    /// Where shuffle files go (default: a new temporary directory).
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler; keep it well under the scheduler's
    /// executor timeout.
    pub heartbeat_seconds: u64,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            scheduler: default_scheduler_url(),
            bind_host: DEFAULT_BIND_HOST.to_string(),
            external_host: None,
            port: DEFAULT_FLIGHT_PORT,
            grpc_port: DEFAULT_GRPC_PORT,
            vcores: 0,
            work_dir: None,
            heartbeat_seconds: DEFAULT_HEARTBEAT_SECONDS,
        }
    }
}

/// Runs an executor until the process ends.
pub async fn run(options: ExecutorOptions) -> Result<()> {
    let endpoint = url::Url::parse(&scheduler_endpoint(&options.scheduler)?)
        .map_err(|e| cxlake::DataFusionError::Configuration(format!("{}: {e}", options.scheduler)))?;
    let registry = BallistaFunctionRegistry::from(&server_session(cluster_config())?);
    let stores = server_stores()?;
    let spill_dir = options.work_dir.clone();
    // cxlake's runtime (object stores from the environment, no listing cache) instead of
    // Ballista's default, which reads local files only.
    let runtime: RuntimeProducer = Arc::new(move |_config: &SessionConfig| {
        let mut builder = cxlake::lake::runtime_env_builder(None, Arc::clone(&stores));
        if let Some(dir) = &spill_dir {
            builder = builder.with_temp_file_path(dir);
        }
        builder.build_arc()
    });
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: Some(options.external_host.unwrap_or(options.bind_host)),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host: endpoint.host_str().unwrap_or("localhost").to_string(),
        scheduler_port: endpoint.port().unwrap_or(crate::DEFAULT_SCHEDULER_PORT),
        // Wait for a scheduler that is still starting, as under a service manager.
        scheduler_connect_timeout_seconds: 60,
        vcores: if options.vcores == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            options.vcores
        },
        work_dir: options.work_dir,
        executor_heartbeat_interval_seconds: options.heartbeat_seconds.max(1),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_runtime_producer: Some(runtime),
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(CxlakeLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(CxlakePhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(ballista_error)
}
