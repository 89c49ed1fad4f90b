//! A Ballista scheduler that plans with cxlake's functions, settings and codecs.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use cxlake::{DataFusionError, Result};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use crate::codec::{CxlakeLogicalCodec, CxlakePhysicalCodec};
use crate::session::{cluster_config, server_session};
use crate::{ballista_error, DEFAULT_SCHEDULER_PORT};

/// The host name executors and clients reach a scheduler by unless told otherwise.
pub const DEFAULT_EXTERNAL_HOST: &str = "localhost";
/// Seconds without a heartbeat before an executor counts as lost, unless told otherwise.
pub const DEFAULT_EXECUTOR_TIMEOUT_SECONDS: u64 = 30;

/// Where a scheduler listens and how soon it gives up on a silent executor.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The address to listen on (0.0.0.0 for every interface).
    pub bind_host: String,
    /// The port to listen on; 0 picks a free one (see the `ready` callback of [`run`]).
    pub port: u16,
    /// The host name executors and clients reach this scheduler by.
    pub external_host: String,
    /// Seconds without a heartbeat after which an executor counts as lost and its tasks are run
    /// elsewhere. Ballista's default is 180; a shorter time lets a query survive a lost
    /// executor sooner, at the price of more heartbeat traffic.
    pub executor_timeout_seconds: u64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            bind_host: crate::executor::DEFAULT_BIND_HOST.to_string(),
            port: DEFAULT_SCHEDULER_PORT,
            external_host: DEFAULT_EXTERNAL_HOST.to_string(),
            executor_timeout_seconds: DEFAULT_EXECUTOR_TIMEOUT_SECONDS,
        }
    }
}

/// Runs a scheduler until the process ends. `ready` is called with the address it listens on
/// once it accepts connections.
pub async fn run(options: SchedulerOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((options.bind_host.as_str(), options.port)).await.map_err(|e| {
        DataFusionError::Configuration(format!(
            "the scheduler cannot listen on {}:{}: {e}; pick another --port or --bind-host",
            options.bind_host, options.port
        ))
    })?;
    let address = listener.local_addr()?;
    let mut config = SchedulerConfig::default()
        .with_hostname(options.external_host.clone())
        .with_port(address.port())
        .with_override_config_producer(Arc::new(cluster_config))
        .with_override_session_builder(Arc::new(server_session));
    config.bind_host = options.bind_host.clone();
    config.executor_timeout_seconds = options.executor_timeout_seconds;
    config.expire_dead_executor_interval_seconds = (options.executor_timeout_seconds / 3).clamp(1, 15);
    config.no_executors_grace_period_seconds = options.executor_timeout_seconds;
    config.override_logical_codec = Some(Arc::new(CxlakeLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(CxlakePhysicalCodec::default()));
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista_error)?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config).await.map_err(ballista_error)?;
    ready(address);
    start_grpc_service_with_listener(listener, scheduler).await.map_err(ballista_error)
}
