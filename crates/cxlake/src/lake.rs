//! The session every front end works through.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::TableReference;
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use std::panic::AssertUnwindSafe;

use crate::location::Location;
use crate::sample;
use crate::stores::{explain_store_failure, is_store_option, LakeStores, StoreOptions};
use crate::write::{StagedCopy, WriteSummary};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Ident, Insert, ObjectName, Statement as SqlStatement, TableObject, Value};

/// Errors that may come from one bad file in a table: Parquet decoding errors and panics.
fn is_file_error(e: &DataFusionError) -> bool {
    let text = e.to_string();
    matches!(e.find_root(), DataFusionError::ParquetError(_))
        || text.contains("Parquet error")
        || text.contains("failed unexpectedly")
}

/// Why a Parquet file's footer cannot be read, if it cannot: reads the footer through the store
/// the table reads (local disk or an object store) and decodes it.
async fn footer_problem(store: &dyn ObjectStore, meta: &ObjectMeta) -> Option<String> {
    let size = meta.size;
    if size < 12 {
        return Some(format!("it is {size} bytes long, too short for a Parquet file"));
    }
    let tail = store.get_range(&meta.location, size - 8..size).await.ok()?;
    if &tail[4..] != b"PAR1" {
        return Some("it is not a Parquet file (it does not end with the PAR1 magic bytes)".to_string());
    }
    let length = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if length + 8 > size {
        return Some(format!("its footer is corrupt (a footer length of {length} bytes in a file of {size})"));
    }
    let footer = store.get_range(&meta.location, size - 8 - length..size - 8).await.ok()?;
    match std::panic::catch_unwind(AssertUnwindSafe(|| ParquetMetaDataReader::decode_metadata(&footer))) {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("its footer is corrupt (the Parquet reader could not decode it)".to_string()),
    }
}

/// What a panic said (its `&str` or `String` payload).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string())
}

/// The error for a statement that panicked: what the panic said, and the likely cause.
fn panic_error(panic: Box<dyn std::any::Any + Send>) -> DataFusionError {
    let message = panic_message(panic.as_ref());
    DataFusionError::Execution(format!(
        "the statement failed unexpectedly while running ({message}); a corrupt or truncated Parquet file \
         in the tables it reads is the usual cause: check the files most recently added"
    ))
}

/// A table registered for one statement, deregistered when the statement is over.
struct TemporaryTable {
    ctx: SessionContext,
    name: String,
}

impl Drop for TemporaryTable {
    fn drop(&mut self) {
        let _ = self.ctx.deregister_table(self.name.as_str());
    }
}

/// Aborts a staged write that did not reach its commit (the statement failed or was dropped).
struct StagingGuard(Option<StagedCopy>);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(staged) = self.0.take() {
            staged.abort();
        }
    }
}

/// A DataFusion session with every cxlake function and `cxlake.*` setting registered, and the
/// tables of a lake.
#[derive(Clone)]
pub struct Lake {
    ctx: SessionContext,
    stores: Arc<LakeStores>,
}

/// Options for a [`Lake`]: tables, lake directories, and execution settings.
#[derive(Debug, Default, Clone)]
pub struct LakeBuilder {
    tables: Vec<(String, String)>,
    lake_dirs: Vec<String>,
    sample_lake: bool,
    target_partitions: Option<usize>,
    batch_size: Option<usize>,
    memory_limit: Option<usize>,
    store_options: StoreOptions,
}

impl LakeBuilder {
    /// Registers `location` (a Parquet file, a directory of Parquet files or a glob) as `name`.
    pub fn table(mut self, name: impl Into<String>, location: impl Into<String>) -> Self {
        self.tables.push((name.into(), location.into()));
        self
    }

    /// Registers every Parquet file or directory directly under `dir` as a table named after it.
    pub fn lake_dir(mut self, dir: impl Into<String>) -> Self {
        self.lake_dirs.push(dir.into());
        self
    }

    /// Registers the built-in sample lake (see [`crate::sample`]).
    pub fn with_sample_lake(mut self) -> Self {
        self.sample_lake = true;
        self
    }

    /// How many partitions queries run in (default: the number of cores).
    pub fn target_partitions(mut self, n: usize) -> Self {
        self.target_partitions = Some(n);
        self
    }

    /// Rows per record batch (default: DataFusion's 8192).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Bounds the memory queries use to `bytes`; sorts, joins and aggregations that need more
    /// spill to the operating system's temporary directory instead of failing, and a query that
    /// cannot stay within the limit fails with an error that says so.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// An object-store option for every table of the session (`aws.endpoint`, `aws.region`,
    /// `azure.account_name`, ...; see [`crate::stores`]), over the cloud's environment variables
    /// and under a table's own `OPTIONS`.
    pub fn store_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.store_options.insert(key.into(), value.into());
        self
    }

    pub async fn build(self) -> Result<Lake> {
        let stores = self.stores()?;
        let runtime = runtime_env(self.memory_limit, Arc::clone(&stores))?;
        let ctx = SessionContext::new_with_config_rt(self.session_config(), runtime);
        self.build_on(ctx, stores).await
    }

    /// The object stores [`LakeBuilder::build`] gives its session: set up on first use from each
    /// cloud's environment and this builder's store options. For front ends that make the
    /// session themselves, together with [`runtime_env`] and [`LakeBuilder::build_on`].
    pub fn stores(&self) -> Result<Arc<LakeStores>> {
        Ok(Arc::new(LakeStores::new(self.store_options.clone())?))
    }

    /// The session configuration [`LakeBuilder::build`] gives its session: cxlake's defaults and
    /// this builder's settings. For front ends that make the session themselves (a cluster
    /// client), together with [`LakeBuilder::build_on`].
    pub fn session_config(&self) -> SessionConfig {
        let mut config = session_config();
        if let Some(n) = self.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        if let Some(n) = self.batch_size {
            config = config.with_batch_size(n.max(1));
        }
        config
    }

    /// Builds the lake over a session the caller made (from [`LakeBuilder::session_config`]
    /// and a runtime over [`LakeBuilder::stores`]):
    /// cxlake's functions and settings are added, then this builder's tables registered.
    pub async fn build_on(self, ctx: SessionContext, stores: Arc<LakeStores>) -> Result<Lake> {
        let lake = Lake::with_stores(ctx, stores)?;
        if self.sample_lake {
            lake.register_sample_lake().await?;
        }
        for dir in &self.lake_dirs {
            lake.register_lake_dir(dir).await?;
        }
        for (name, location) in &self.tables {
            lake.register(name, location).await?;
        }
        Ok(lake)
    }
}

/// What one statement produced: a query's rows, or nothing for `SET`, `CREATE` and the like.
#[derive(Debug, Clone)]
pub struct StatementOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Files and bytes a `COPY ... TO` or `INSERT INTO` committed (see [`crate::write`]).
    pub written: Option<WriteSummary>,
}

impl StatementOutput {
    /// Whether the statement returns rows to show (it has columns).
    pub fn has_rows(&self) -> bool {
        !self.schema.fields().is_empty()
    }

    pub fn row_count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

impl Lake {
    /// An empty lake: cxlake's functions and settings, no tables.
    pub fn new() -> Result<Self> {
        Self::with_config(session_config())
    }

    pub fn builder() -> LakeBuilder {
        LakeBuilder::default()
    }

    /// A lake over a session configured by the caller; cxlake's functions and settings are added.
    pub fn with_config(config: SessionConfig) -> Result<Self> {
        let stores = Arc::new(LakeStores::new(StoreOptions::new())?);
        let runtime = runtime_env(None, Arc::clone(&stores))?;
        Self::with_stores(SessionContext::new_with_config_rt(config, runtime), stores)
    }

    /// A lake over a session built by the caller (runtime, memory pool, object stores);
    /// cxlake's functions and settings are added. Object stores come from the caller's registry;
    /// stores for tables registered with options are added to it. Messages are masked for the
    /// clouds' secret environment variables and those options only: the caller's registry is not
    /// read for secrets.
    pub fn with_context(ctx: SessionContext) -> Result<Self> {
        Self::with_stores(ctx, Arc::new(LakeStores::new(StoreOptions::new())?))
    }

    fn with_stores(ctx: SessionContext, stores: Arc<LakeStores>) -> Result<Self> {
        cxlake_udfs::register_all(&ctx)?;
        Ok(Self { ctx, stores })
    }

    /// The underlying DataFusion session, for anything this API does not wrap.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers a table over a location (see [`Location`]). Directories are read recursively;
    /// `key=value` directory levels become partition columns, typed as `DATE` when every value
    /// is `YYYY-MM-DD`, `BIGINT` when every value is an integer, and `VARCHAR` otherwise, so
    /// filters on them prune directories before any file is opened. Object stores are set up
    /// from the URL (see [`crate::stores`]).
    pub async fn register(&self, name: &str, location: &str) -> Result<()> {
        self.register_with_options(name, location, StoreOptions::new()).await
    }

    /// [`Lake::register`] with object-store options for the location's bucket (`aws.endpoint`,
    /// `aws.region`, ...), over the session's.
    pub async fn register_with_options(&self, name: &str, location: &str, options: StoreOptions) -> Result<()> {
        self.register_inner(name, location, options).await.map_err(|e| self.stores.redact_error(e))
    }

    async fn register_inner(&self, name: &str, location: &str, options: StoreOptions) -> Result<()> {
        let parsed = Location::parse(location)?;
        if let Location::Remote { url } = &parsed {
            if !options.is_empty() {
                self.use_store_options(url, options)?;
            }
        }
        let url = ListingTableUrl::parse(parsed.listing_url()?)?;
        let state = self.ctx.state();
        let is_file = !url.is_collection() && url.get_glob().is_none();
        let extension = if is_file { "" } else { ".parquet" };
        let files = list_files(&state, &url, extension)
            .await
            .map_err(|e| DataFusionError::Plan(format!("table '{name}': cannot list {parsed}: {}", describe(&e))))?;
        if files.is_empty() {
            return plan_err!(
                "table '{name}': no Parquet files at {parsed} (expected a .parquet file, a directory \
                 holding .parquet files, or a glob matching some)"
            );
        }
        let partition_cols = partition_columns(&url, &files)
            .map_err(|e| DataFusionError::Plan(format!("table '{name}' at {parsed}: {e}")))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(extension)
            .with_table_partition_cols(partition_cols);
        let schema = options.infer_schema(&state, &url).await.map_err(|e| {
            DataFusionError::Plan(format!(
                "table '{name}': cannot read the Parquet schema at {parsed}: {}",
                describe(&e)
            ))
        })?;
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
        let table = ListingTable::try_new(config)?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Sets up `url`'s bucket with `options` over the session's, for this and later statements.
    fn use_store_options(&self, url: &url::Url, options: StoreOptions) -> Result<()> {
        let store = self.stores.build_with_options(url, options)?;
        self.ctx.runtime_env().register_object_store(url, store);
        Ok(())
    }

    /// Registers every `.parquet` file and every directory directly under `dir` (a local
    /// directory or an object-store prefix) as a table named after it (file stem or directory
    /// name). Names starting with `.` or `_` are skipped. Returns the registered table names,
    /// sorted.
    pub async fn register_lake_dir(&self, dir: &str) -> Result<Vec<String>> {
        let tables = match Location::parse(dir)? {
            Location::Local { path, glob: false } => local_lake_entries(&path)?,
            Location::Remote { url } => {
                self.remote_lake_entries(&url).await.map_err(|e| self.stores.redact_error(e))?
            }
            Location::Local { .. } => return plan_err!("--lake {dir}: a lake is a directory, not a glob"),
        };
        if tables.is_empty() {
            return plan_err!("lake directory {dir} holds no .parquet files or directories");
        }
        for (name, location) in &tables {
            self.register(name, location).await?;
        }
        Ok(tables.into_iter().map(|(name, _)| name).collect())
    }

    /// The tables directly under an object-store prefix: sub-prefixes and `.parquet` objects.
    async fn remote_lake_entries(&self, url: &url::Url) -> Result<Vec<(String, String)>> {
        let store = self.ctx.runtime_env().object_store_registry.get_store(url)?;
        let prefix = ObjectPath::from_url_path(url.path())?;
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        let listing = store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| DataFusionError::Plan(format!("lake {url}: cannot list it: {}", describe(&e.into()))))?;
        let base = format!("{}://{}", url.scheme(), url.authority());
        let mut tables = Vec::new();
        for dir in listing.common_prefixes {
            if let Some(name) = dir.filename().filter(|n| !n.starts_with(['.', '_'])) {
                tables.push((name.to_string(), format!("{base}/{dir}/")));
            }
        }
        for object in listing.objects {
            let Some(file_name) = object.location.filename() else { continue };
            if let Some(stem) = file_name.strip_suffix(".parquet").filter(|_| !file_name.starts_with(['.', '_'])) {
                tables.push((stem.to_string(), format!("{base}/{}", object.location)));
            }
        }
        tables.sort();
        Ok(tables)
    }

    /// Registers the built-in sample lake's tables.
    pub async fn register_sample_lake(&self) -> Result<Vec<String>> {
        let dir = sample::sample_lake_dir()?;
        self.register_lake_dir(&dir.to_string_lossy()).await
    }

    /// Plans one SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.ctx.sql(sql).await
    }

    /// Runs one SQL statement and collects its rows, as [`Lake::execute`] does (committed
    /// writes, corrupt files named in errors).
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.execute(sql).await?.batches)
    }

    /// Runs one statement and streams its rows as they are computed.
    pub async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let stream = self.sql(sql).await.map_err(|e| self.stores.redact_error(e))?;
        let stream = stream.execute_stream().await.map_err(|e| self.stores.redact_error(e))?;
        let stores = Arc::clone(&self.stores);
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream.map_err(move |e| stores.redact_error(e)))))
    }

    /// `text` with the values of every credential this session knows masked (`***`): for logs
    /// that echo statements or options.
    pub fn redact(&self, text: &str) -> String {
        self.stores.redact(text)
    }

    /// Runs one statement to completion. Nothing is returned unless the whole statement
    /// succeeded, so a caller never shows part of a failing result. `COPY ... TO` and `INSERT INTO`
    /// a table over a directory are staged and committed only on success, on local disk and on
    /// object stores (see [`crate::write`]); errors have credentials masked.
    pub async fn execute(&self, sql: &str) -> Result<StatementOutput> {
        self.execute_inner(sql).await.map_err(|e| self.stores.redact_error(e))
    }

    async fn execute_inner(&self, sql: &str) -> Result<StatementOutput> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect)?;
        // Object-store options in `OPTIONS (...)` set up the location's bucket; the rest are the
        // format's and go on to DataFusion.
        match &mut statement {
            DFStatement::CreateExternalTable(create) => {
                let options = take_store_options(&mut create.options);
                for location in &create.locations {
                    if let (false, Location::Remote { url }) = (options.is_empty(), Location::parse(location)?) {
                        self.use_store_options(&url, options.clone())?;
                    }
                }
            }
            DFStatement::CopyTo(copy) => {
                let options = take_store_options(&mut copy.options);
                if let (false, Location::Remote { url }) = (options.is_empty(), Location::parse(&copy.target)?) {
                    self.use_store_options(&url, options)?;
                }
            }
            _ => {}
        }
        let references = state.resolve_table_references(&statement).unwrap_or_default();
        let mut staged_insert = None;
        let staged = match &mut statement {
            DFStatement::CopyTo(copy) => StagedCopy::prepare(copy, &self.ctx.runtime_env()).await?,
            DFStatement::Statement(inner) => match inner.as_mut() {
                SqlStatement::Insert(insert) => match self.stage_insert(insert).await? {
                    Some((staged, temporary)) => {
                        staged_insert = Some(temporary);
                        Some(staged)
                    }
                    None => None,
                },
                _ => None,
            },
            _ => None,
        };
        // The staging table of an INSERT lives as long as the statement.
        let _staging_table = staged_insert.map(|name| TemporaryTable { ctx: self.ctx.clone(), name });
        let run = async {
            let plan = state.statement_to_plan(statement).await?;
            let df = self.ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok::<_, DataFusionError>((schema, batches))
        };
        // If this future is dropped (the query cancelled), the guard removes the staged files.
        let mut guard = StagingGuard(staged);
        // A panic inside a reader (the Parquet reader panics on some corrupt footers) fails this
        // statement with an error instead of taking down the process.
        let outcome = AssertUnwindSafe(run).catch_unwind().await.map_err(panic_error).and_then(|r| r);
        let (schema, batches) = match outcome {
            Ok(done) => done,
            // Parquet errors do not say which file they came from: find it and say so.
            Err(e) if is_file_error(&e) => {
                return Err(match self.unreadable_file(&references).await {
                    Some((file, reason)) => DataFusionError::Execution(format!(
                        "cannot read {file}: {reason}. Move the file out of the lake (or restore it) and run again"
                    )),
                    None => e,
                })
            }
            Err(e) if explain_store_failure(&e.to_string()).is_some() => {
                return Err(DataFusionError::Execution(describe(&e)))
            }
            Err(e) => return Err(e),
        };
        let written = match guard.0.take() {
            Some(staged) => Some(staged.commit().await?),
            None => None,
        };
        Ok(StatementOutput { schema, batches, written })
    }

    /// Stages `INSERT INTO` a table over a directory (local or on an object store): the rows go
    /// to a staging table with the same schema, format and partitioning, whose files join the
    /// table's when the statement has succeeded. Returns the staging and the staging table's name.
    async fn stage_insert(&self, insert: &mut Insert) -> Result<Option<(StagedCopy, String)>> {
        let TableObject::TableName(name) = &insert.table else { return Ok(None) };
        if insert.overwrite {
            return Ok(None);
        }
        let Ok(provider) = self.ctx.table_provider(name.to_string()).await else { return Ok(None) };
        let Some(listing) = provider.downcast_ref::<ListingTable>() else { return Ok(None) };
        let [table_url] = listing.table_paths().as_slice() else { return Ok(None) };
        if !table_url.is_collection() || table_url.get_glob().is_some() {
            return Ok(None);
        }
        let Some((staged, staged_url)) =
            StagedCopy::prepare_append(table_url.as_str(), &self.ctx.runtime_env()).await?
        else {
            return Ok(None);
        };
        let options = listing.options().clone();
        let partitions: Vec<&String> = options.table_partition_cols.iter().map(|(name, _)| name).collect();
        let file_fields: Vec<_> =
            provider.schema().fields().iter().filter(|f| !partitions.contains(&f.name())).cloned().collect();
        let config = ListingTableConfig::new(ListingTableUrl::parse(&staged_url)?)
            .with_listing_options(options)
            .with_schema(Arc::new(datafusion::arrow::datatypes::Schema::new(file_fields)));
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let temporary = format!("__cxlake_insert_{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.ctx.register_table(temporary.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        insert.table = TableObject::TableName(ObjectName::from(vec![Ident::new(temporary.clone())]));
        Ok(Some((staged, temporary)))
    }

    /// The first Parquet file (local or on an object store) of the referenced tables whose footer cannot be read, with
    /// the reason: the diagnosis of a failed statement, so it may take time.
    async fn unreadable_file(&self, references: &[TableReference]) -> Option<(String, String)> {
        let state = self.ctx.state();
        for reference in references {
            let Ok(provider) = self.ctx.table_provider(reference.clone()).await else { continue };
            let Some(listing) = provider.downcast_ref::<ListingTable>() else { continue };
            for url in listing.table_paths() {
                let Ok(store) = state.runtime_env().object_store(url) else { continue };
                let Ok(files) = list_objects(&state, url, store.as_ref(), ".parquet").await else { continue };
                for file in files {
                    if let Some(reason) = footer_problem(store.as_ref(), &file).await {
                        return Some((object_display(url, &file.location), reason));
                    }
                }
            }
        }
        None
    }

    /// Names of the registered tables (the default schema), sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The schema of a registered table.
    pub async fn table_schema(&self, name: &str) -> Result<SchemaRef> {
        Ok(self.ctx.table_provider(name).await?.schema())
    }
}

/// cxlake's runtime: no cache of directory listings, so that files a job adds to the lake are read
/// by the next query (DataFusion caches listings for the life of a session by default), and an
/// optional memory limit with spilling to the temporary directory, and `stores` for every URL.
pub fn runtime_env(memory_limit: Option<usize>, stores: Arc<LakeStores>) -> Result<Arc<RuntimeEnv>> {
    runtime_env_builder(memory_limit, stores).build_arc()
}

/// [`runtime_env`] before it is built, for front ends that add to it (a cluster executor's
/// spill directory).
pub fn runtime_env_builder(memory_limit: Option<usize>, stores: Arc<LakeStores>) -> RuntimeEnvBuilder {
    let mut builder = RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .with_object_store_registry(stores);
    if let Some(bytes) = memory_limit {
        builder = builder.with_memory_limit(bytes, 1.0);
    }
    builder
}

/// cxlake's session defaults: `information_schema` on, and directories read recursively (a
/// lake's files often sit in dated or numbered subdirectories that are not partitions).
fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().execution.listing_table_ignore_subdirectory = false;
    config
}

async fn list_files(state: &dyn Session, url: &ListingTableUrl, extension: &str) -> Result<Vec<ObjectPath>> {
    let store = state.runtime_env().object_store(url)?;
    let files = list_objects(state, url, store.as_ref(), extension).await?;
    Ok(files.into_iter().map(|meta| meta.location).collect())
}

async fn list_objects(
    state: &dyn Session,
    url: &ListingTableUrl,
    store: &dyn ObjectStore,
    extension: &str,
) -> Result<Vec<ObjectMeta>> {
    url.list_all_files(state, store, extension).await?.try_collect().await
}

/// A file of a table as users spell it: a path on local disk, a URL on an object store.
fn object_display(url: &ListingTableUrl, path: &ObjectPath) -> String {
    if url.scheme() == "file" {
        format!("/{path}")
    } else {
        format!("{}{path}", url.object_store().as_str())
    }
}

/// An error's text with the likely cause and the way out when an object store refused or did
/// not answer.
fn describe(e: &DataFusionError) -> String {
    let text = e.to_string();
    match explain_store_failure(&text) {
        Some(why) => format!("{why} ({text})"),
        None => text,
    }
}

/// Takes the object-store options (`aws.*`, `gcp.*`, `azure.*`) out of a statement's `OPTIONS`.
fn take_store_options(options: &mut Vec<(String, Value)>) -> StoreOptions {
    let mut taken = StoreOptions::new();
    options.retain(|(key, value)| {
        if !is_store_option(key) {
            return true;
        }
        let text = match value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        };
        taken.insert(key.clone(), text);
        false
    });
    taken
}

/// The tables directly under a local lake directory: subdirectories and `.parquet` files.
fn local_lake_entries(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(path)
        .map_err(|e| DataFusionError::Plan(format!("lake directory {}: {e}", path.display())))?;
    let mut tables = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataFusionError::Plan(format!("lake directory {}: {e}", path.display())))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(['.', '_']) {
            continue;
        }
        let entry_path = entry.path();
        if entry_path.is_dir() {
            tables.push((file_name, entry_path.to_string_lossy().into_owned()));
        } else if let Some(stem) = file_name.strip_suffix(".parquet") {
            tables.push((stem.to_string(), entry_path.to_string_lossy().into_owned()));
        }
    }
    tables.sort();
    Ok(tables)
}

/// The hive partition columns (`key=value` directory levels) of a table, typed from the values
/// found on disk.
fn partition_columns(url: &ListingTableUrl, files: &[ObjectPath]) -> Result<Vec<(String, DataType)>> {
    let mut keys: Option<Vec<String>> = None;
    let mut values: Vec<Vec<String>> = Vec::new();
    for file in files {
        let Some(parts) = url.strip_prefix(file) else { continue };
        let parts: Vec<&str> = parts.collect();
        let dirs = &parts[..parts.len().saturating_sub(1)];
        let pairs: Vec<(&str, &str)> = dirs.iter().filter_map(|d| d.split_once('=')).collect();
        let file_keys: Vec<String> = pairs.iter().map(|(k, _)| k.to_string()).collect();
        match &keys {
            None => {
                values = vec![Vec::new(); file_keys.len()];
                keys = Some(file_keys);
            }
            Some(k) if *k != file_keys => {
                return plan_err!(
                    "inconsistent partition directories: {} has {:?} where others have {:?}",
                    file,
                    file_keys,
                    k
                );
            }
            Some(_) => {}
        }
        for (i, (_, v)) in pairs.iter().enumerate() {
            values[i].push(v.to_string());
        }
    }
    Ok(keys
        .unwrap_or_default()
        .into_iter()
        .zip(values)
        .map(|(key, vals)| {
            let ty = infer_partition_type(&vals);
            (key, ty)
        })
        .collect())
}

fn infer_partition_type(values: &[String]) -> DataType {
    let real = values.iter().filter(|v| v.as_str() != "__HIVE_DEFAULT_PARTITION__");
    if real.clone().all(|v| is_date(v)) {
        DataType::Date32
    } else if real.clone().all(|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else {
        DataType::Utf8
    }
}

fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && chrono_like_valid(v)
}

fn chrono_like_valid(v: &str) -> bool {
    let (y, m, d) = (&v[0..4], &v[5..7], &v[8..10]);
    let (Ok(_), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("tables", &self.table_names()).finish()
    }
}
