//! The sessions of a cluster: the configuration every process starts from, the session the
//! scheduler plans in, and the client session a [`Lake`] runs its SQL through.

use std::sync::{Arc, OnceLock};

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::BallistaCodec;
use ballista_core::utils::default_session_builder;
use cxlake::datafusion::execution::SessionState;
use cxlake::datafusion::execution::SessionStateBuilder;
use cxlake::datafusion::prelude::{SessionConfig, SessionContext};
use cxlake::stores::LakeStores;
use cxlake::udfs::CxlakeOptions;
use cxlake::{DataFusionError, Lake, LakeBuilder, Result, StoreOptions};

use crate::codec::{CxlakeLogicalCodec, CxlakePhysicalCodec};

/// The port a `df://` URL without one means: Ballista's.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// The configuration the scheduler and executors start every session from: Ballista's, with
/// cxlake's `cxlake.*` settings (without them the values a client sends would be dropped, and a
/// `SET cxlake.invalid_input = 'skip'` would not reach the scalar functions the executors run)
/// and cxlake's codecs.
pub fn cluster_config() -> SessionConfig {
    with_codecs(SessionConfig::new_with_ballista().with_option_extension(CxlakeOptions::default()))
}

fn with_codecs(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(CxlakeLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(CxlakePhysicalCodec::default()))
}

/// The codecs of every cluster process (see [`crate::codec`]).
pub fn cluster_codec() -> BallistaCodec {
    BallistaCodec::new(Arc::new(CxlakeLogicalCodec::default()), Arc::new(CxlakePhysicalCodec::default()))
}

/// A server-side session for `config` (the client's settings applied over [`cluster_config`]):
/// Ballista's, with every cxlake function and the rule that applies `cxlake.invalid_input` to
/// aggregates when the scheduler plans, and cxlake's runtime (no cache of directory listings, so
/// files added to a lake are read by the next query).
pub fn server_session(config: SessionConfig) -> Result<SessionState> {
    let state = default_session_builder(config)?;
    let runtime = cxlake::lake::runtime_env(None, server_stores()?)?;
    let state = SessionStateBuilder::new_from_existing(state).with_runtime_env(runtime).build();
    let lake = Lake::with_context(SessionContext::new_with_state(state))?;
    Ok(lake.context().state())
}

/// The object stores of a scheduler or executor process, shared by all its sessions: each
/// bucket's store is set up on first use from the cloud's environment variables and credential
/// chain, as in the CLI. (A client's `--store-option`s and table `OPTIONS` stay with the client;
/// the cluster's processes need their own credentials, as a cloud's machine roles give them.)
pub fn server_stores() -> Result<Arc<LakeStores>> {
    static STORES: OnceLock<Arc<LakeStores>> = OnceLock::new();
    if let Some(stores) = STORES.get() {
        return Ok(Arc::clone(stores));
    }
    let stores = Arc::new(LakeStores::new(StoreOptions::new())?);
    Ok(Arc::clone(STORES.get_or_init(|| stores)))
}

/// The scheduler address (`http://host:port`) a `df://host[:port]` URL names.
pub fn scheduler_endpoint(url: &str) -> Result<String> {
    let bad = |why: &str| {
        DataFusionError::Configuration(format!(
            "cluster URL '{url}' {why}: write df://HOST:PORT, the address of a `cxlake cluster scheduler` \
             (port {DEFAULT_SCHEDULER_PORT} when left out)"
        ))
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if parsed.scheme() != "df" {
        return Err(bad(&format!("has the scheme '{}' instead of df", parsed.scheme())));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("names no host"))?;
    Ok(format!("http://{host}:{}", parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT)))
}

/// Builds `builder`'s lake with every query running on the cluster whose scheduler is at `url`
/// (`df://HOST:PORT`). Tables are registered as in a local lake; local files must be readable at
/// the same paths on every executor, and object stores with the nodes' own credentials (see
/// [`server_stores`]). Fails when the scheduler cannot be reached, rather than at
/// the first query.
pub async fn connect(builder: LakeBuilder, url: &str) -> Result<Lake> {
    let endpoint = scheduler_endpoint(url)?;
    SchedulerGrpcClient::connect(endpoint.clone()).await.map_err(|e| {
        DataFusionError::Configuration(format!(
            "cannot reach the cxlake scheduler at {url} ({endpoint}): {e}; start one with \
             `cxlake cluster scheduler`, or check the host and port"
        ))
    })?;
    let stores = builder.stores()?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(with_codecs(builder.session_config()))
        .with_runtime_env(cxlake::lake::runtime_env(None, Arc::clone(&stores))?)
        .build();
    let ctx = SessionContext::remote_with_state(url, state).await?;
    builder.build_on(ctx, stores).await
}

/// Puts a [`LakeBuilder`]'s lake on a cluster: `Lake::builder().with_sample_lake().build_on_cluster("df://host:50050")`.
#[allow(async_fn_in_trait)]
pub trait LakeBuilderClusterExt {
    /// See [`connect`].
    async fn build_on_cluster(self, url: &str) -> Result<Lake>;
}

impl LakeBuilderClusterExt for LakeBuilder {
    async fn build_on_cluster(self, url: &str) -> Result<Lake> {
        connect(self, url).await
    }
}
