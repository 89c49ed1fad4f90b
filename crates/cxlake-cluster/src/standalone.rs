//! A whole cluster inside the current process: a scheduler and executors on free local ports,
//! serving a lake as a remote cluster would. For tests and for trying the cluster path without
//! starting processes.

use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::RuntimeProducer;
use ballista_executor::new_standalone_executor_from_builder;
use ballista_scheduler::standalone::new_standalone_scheduler_with_builder;
use cxlake::{DataFusionError, Lake, LakeBuilder, Result};

use crate::ballista_error;
use crate::session::{cluster_codec, cluster_config, connect, server_session};

/// Starts a scheduler and `executors` executors of `vcores` task slots each on the current Tokio
/// runtime, and builds `builder`'s lake on them. They stop with the runtime.
pub async fn standalone(builder: LakeBuilder, executors: usize, vcores: usize) -> Result<Lake> {
    let address =
        new_standalone_scheduler_with_builder(Arc::new(server_session), Arc::new(cluster_config), cluster_codec())
            .await
            .map_err(ballista_error)?;
    let endpoint = format!("http://localhost:{}", address.port());
    let session = server_session(cluster_config())?;
    let runtime = session.runtime_env().clone();
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    for _ in 0..executors.max(1) {
        let scheduler = SchedulerGrpcClient::connect(endpoint.clone()).await.map_err(|e| {
            DataFusionError::Execution(format!("the in-process scheduler at {endpoint} is unreachable: {e}"))
        })?;
        new_standalone_executor_from_builder(
            scheduler,
            vcores.max(1),
            Arc::new(cluster_config),
            runtime_producer.clone(),
            cluster_codec(),
            BallistaFunctionRegistry::from(&session),
        )
        .await
        .map_err(ballista_error)?;
    }
    connect(builder, &format!("df://localhost:{}", address.port())).await
}
