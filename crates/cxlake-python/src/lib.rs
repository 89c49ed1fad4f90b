//! `cxlake._cxlake`: the Python extension module behind the `cxlake` package.
//!
//! A [`PyLake`] wraps a [`cxlake::Lake`]; [`QueryResult`] (`cxlake.Result`) holds a planned query
//! and runs it each time it is consumed: as a streaming Arrow C stream (`__arrow_c_stream__`),
//! or collected into pyarrow, polars or pandas. Queries run on one tokio runtime shared by every
//! lake; while Python waits on one, the GIL is released and signals are checked every 100 ms so
//! Ctrl-C (KeyboardInterrupt) cancels the query.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::array::RecordBatchReader;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow::pyarrow::{IntoPyArrow, ToPyArrow};
use arrow::record_batch::{RecordBatch, RecordBatchIterator};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::DataFrame;
use futures::{StreamExt, TryStreamExt};
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBool, PyCapsule, PyDict, PyFloat, PyInt, PyList, PyString};

pyo3::create_exception!(
    cxlake,
    CxlakeError,
    PyException,
    "An error from the cxlake engine: SQL that does not parse or plan, a missing table, invalid input to a metric."
);

/// How often a waiting call checks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(100);
/// Rows shown by `repr()` and in notebooks.
const PREVIEW_ROWS: usize = 20;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("cxlake")
            .build()
            .expect("cannot start the cxlake tokio runtime")
    })
}

fn engine_error(e: DataFusionError) -> PyErr {
    CxlakeError::new_err(e.to_string())
}

/// Runs `fut` on the runtime with the GIL released, checking for signals every [`SIGNAL_POLL`].
/// A pending KeyboardInterrupt (or any exception a signal handler raises) drops the future, which
/// cancels the query, and is raised.
fn wait<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = datafusion::error::Result<T>> + Send,
    T: Send,
{
    let rt = runtime();
    let mut fut = std::pin::pin!(fut);
    loop {
        let step = py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, fut.as_mut()).await }));
        match step {
            Ok(result) => return result.map_err(engine_error),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}

/// Reads a path-like (`str` or `os.PathLike`) as a location string.
fn location(obj: &Bound<'_, PyAny>) -> Option<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Some(s.to_string());
    }
    obj.extract::<PathBuf>().ok().map(|p| p.to_string_lossy().into_owned())
}

/// The cxlake engine over a lake of Parquet tables.
#[pyclass(module = "cxlake", name = "Lake", frozen)]
struct PyLake {
    lake: cxlake::Lake,
}

#[pymethods]
impl PyLake {
    #[new]
    // One keyword argument per setting, as Python users expect of a constructor.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (tables=None, lake=None, target_partitions=None, batch_size=None, memory_limit=None, storage_options=None, cluster=None))]
    fn new(
        py: Python<'_>,
        tables: Option<&Bound<'_, PyDict>>,
        lake: Option<&Bound<'_, PyAny>>,
        target_partitions: Option<usize>,
        batch_size: Option<usize>,
        memory_limit: Option<&Bound<'_, PyAny>>,
        storage_options: Option<std::collections::HashMap<String, String>>,
        cluster: Option<String>,
    ) -> PyResult<Self> {
        let mut builder = cxlake::Lake::builder();
        for (key, value) in storage_options.unwrap_or_default() {
            builder = builder.store_option(key, value);
        }
        if tables.is_none() && lake.is_none() {
            builder = builder.with_sample_lake();
        }
        if let Some(lake) = lake {
            let dirs: Vec<String> = match location(lake) {
                Some(dir) => vec![dir],
                None => lake
                    .try_iter()
                    .map_err(|_| PyTypeError::new_err("lake must be a path or a list of paths"))?
                    .map(|item| {
                        location(&item?).ok_or_else(|| PyTypeError::new_err("lake must be a path or a list of paths"))
                    })
                    .collect::<PyResult<_>>()?,
            };
            for dir in dirs {
                builder = builder.lake_dir(dir);
            }
        }
        if let Some(tables) = tables {
            for (name, loc) in tables.iter() {
                let name: String = name.extract()?;
                let loc = location(&loc)
                    .ok_or_else(|| PyTypeError::new_err(format!("tables['{name}'] must be a path or URL string")))?;
                builder = builder.table(name, loc);
            }
        }
        if let Some(n) = target_partitions {
            builder = builder.target_partitions(n);
        }
        if let Some(n) = batch_size {
            builder = builder.batch_size(n);
        }
        if let Some(limit) = memory_limit {
            // Bytes as an int, or a size string such as "4G", as the CLI's --memory-limit takes.
            let bytes = match limit.extract::<usize>() {
                Ok(bytes) => bytes,
                Err(_) => {
                    let text: String = limit.extract().map_err(|_| {
                        PyTypeError::new_err("memory_limit must be a number of bytes or a size such as '4G'")
                    })?;
                    cxlake::job::parse_size(&text).map_err(engine_error)?
                }
            };
            builder = builder.memory_limit(bytes);
        }
        let lake = match cluster {
            Some(url) => wait(py, cxlake_cluster::connect(builder, &url))?,
            None => wait(py, builder.build())?,
        };
        Ok(Self { lake })
    }

    /// Registers `data` as table `name`, replacing a table of that name: a location string (a
    /// Parquet file, a directory of Parquet files, a glob) or any object exporting an Arrow C
    /// stream (`__arrow_c_stream__`: pyarrow Table or RecordBatchReader, polars DataFrame, pandas
    /// DataFrame), which is read into memory.
    fn register(&self, py: Python<'_>, name: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(loc) = location(data) {
            return wait(py, self.lake.register(name, &loc));
        }
        let exporter = if data.hasattr("__arrow_c_stream__")? {
            data.clone()
        } else if data.get_type().module()?.to_string().starts_with("pandas") {
            py.import("pyarrow")?.getattr("Table")?.call_method(
                "from_pandas",
                (data,),
                Some(&[("preserve_index", false)].into_py_dict(py)?),
            )?
        } else {
            return Err(PyTypeError::new_err(format!(
                "register('{name}', ...): expected a location string, or a pyarrow, polars or pandas table \
                 (an object with __arrow_c_stream__), got {}",
                data.get_type().name()?
            )));
        };
        let capsule = exporter.call_method0("__arrow_c_stream__")?;
        let capsule = capsule.cast::<PyCapsule>()?;
        let pointer = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
        // SAFETY: the capsule holds an ArrowArrayStream (its name says so); from_raw moves it out
        // and marks the capsule's copy released, so the capsule's destructor does nothing.
        let stream = unsafe { FFI_ArrowArrayStream::from_raw(pointer.as_ptr() as *mut FFI_ArrowArrayStream) };
        let reader = ArrowArrayStreamReader::try_new(stream).map_err(|e| CxlakeError::new_err(e.to_string()))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<RecordBatch>, ArrowError>>()
            .map_err(|e| CxlakeError::new_err(e.to_string()))?;
        let table = MemTable::try_new(schema, vec![batches]).map_err(engine_error)?;
        let ctx = self.lake.context();
        ctx.deregister_table(name).map_err(engine_error)?;
        ctx.register_table(name, Arc::new(table)).map_err(engine_error)?;
        Ok(())
    }

    /// Plans `query` and returns its [`Result`]; the query runs when the result is consumed.
    /// `params` fills `$name` placeholders with values (None, bool, int, float, str).
    /// `COPY ... TO` runs at once, staged and committed like in the CLI, and its Result holds
    /// the row count.
    #[pyo3(signature = (query, params=None))]
    fn sql(&self, py: Python<'_>, query: &str, params: Option<&Bound<'_, PyDict>>) -> PyResult<QueryResult> {
        if is_copy(&self.lake, query) {
            if params.is_some_and(|p| !p.is_empty()) {
                return Err(PyTypeError::new_err("params are not supported with COPY: put the values in the query"));
            }
            let output = wait(py, self.lake.execute(query))?;
            let df = self.lake.context().read_batches(output.batches).map_err(engine_error)?;
            return Ok(QueryResult { df });
        }
        let mut df = wait(py, self.lake.sql(query))?;
        if let Some(params) = params {
            let mut values = HashMap::new();
            for (key, value) in params.iter() {
                let key: String = key.extract()?;
                let key = key.strip_prefix('$').unwrap_or(&key).to_string();
                values.insert(key.clone(), scalar(&key, &value)?.into());
            }
            df = df.with_param_values(ParamValues::Map(values)).map_err(engine_error)?;
        }
        Ok(QueryResult { df })
    }

    /// Every cxlake function: a list of dicts with name, kind, summary and doc.
    fn functions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for f in cxlake::cxlake_functions() {
            let d = PyDict::new(py);
            d.set_item("name", &f.name)?;
            d.set_item("kind", f.kind)?;
            d.set_item("summary", f.summary())?;
            d.set_item("doc", f.help_text())?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Names of the registered tables, sorted.
    fn tables(&self) -> Vec<String> {
        self.lake.table_names()
    }

    fn __repr__(&self) -> String {
        format!("cxlake.Lake(tables={:?})", self.lake.table_names())
    }
}

/// Whether `query` is a `COPY ... TO` statement.
fn is_copy(lake: &cxlake::Lake, query: &str) -> bool {
    let state = lake.context().state();
    let dialect = state.config().options().sql_parser.dialect;
    matches!(state.sql_to_statement(query, &dialect), Ok(cxlake::datafusion::sql::parser::Statement::CopyTo(_)))
}

/// A Python parameter value as a SQL literal value.
fn scalar(key: &str, value: &Bound<'_, PyAny>) -> PyResult<ScalarValue> {
    if value.is_none() {
        Ok(ScalarValue::Null)
    } else if value.is_instance_of::<PyBool>() {
        Ok(ScalarValue::Boolean(Some(value.extract()?)))
    } else if value.is_instance_of::<PyInt>() {
        Ok(ScalarValue::Int64(Some(value.extract()?)))
    } else if value.is_instance_of::<PyFloat>() {
        Ok(ScalarValue::Float64(Some(value.extract()?)))
    } else if value.is_instance_of::<PyString>() {
        Ok(ScalarValue::Utf8(Some(value.extract()?)))
    } else {
        Err(PyTypeError::new_err(format!(
            "params['{key}']: expected None, bool, int, float or str, got {}",
            value.get_type().name()?
        )))
    }
}

/// A query's result. It runs the query again each time it is consumed.
#[pyclass(module = "cxlake", name = "Result", frozen)]
struct QueryResult {
    df: DataFrame,
}

impl QueryResult {
    /// Starts the query and reads its first batch, so that an error raises here as CxlakeError.
    fn start(&self, py: Python<'_>) -> PyResult<BatchStream> {
        let df = self.df.clone();
        wait(py, async move {
            let mut stream = df.execute_stream().await?;
            let first = stream.next().await.transpose()?;
            Ok(BatchStream { schema: stream.schema(), first, stream: Some(stream) })
        })
    }

    fn collect(&self, py: Python<'_>, limit: Option<usize>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
        let df = self.df.clone();
        wait(py, async move {
            let df = match limit {
                Some(n) => df.limit(0, Some(n))?,
                None => df,
            };
            let stream = df.execute_stream().await?;
            let schema = stream.schema();
            let batches: Vec<RecordBatch> = stream.try_collect().await?;
            Ok((schema, batches))
        })
    }

    /// The first rows as strings, and whether there are more.
    fn preview(&self, py: Python<'_>) -> PyResult<(Vec<String>, Vec<Vec<String>>, bool)> {
        let (schema, batches) = self.collect(py, Some(PREVIEW_ROWS + 1))?;
        let header = schema.fields().iter().map(|f| f.name().clone()).collect();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CxlakeError::new_err(e.to_string()))?;
            for row in 0..batch.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
            }
        }
        let more = rows.len() > PREVIEW_ROWS;
        rows.truncate(PREVIEW_ROWS);
        Ok((header, rows, more))
    }
}

#[pymethods]
impl QueryResult {
    /// Exports the result as an Arrow C stream (the Arrow PyCapsule interface). Batches are
    /// computed as the consumer pulls them; the query starts (and its first batch is computed)
    /// when this is called. `requested_schema` is ignored: the result's own schema is exported.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = self.start(py)?;
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// The result's pyarrow schema (plans the query, runs nothing).
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.df.schema().as_arrow().to_pyarrow(py)
    }

    /// Runs the query and returns a pyarrow Table.
    fn to_arrow<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (schema, batches) = self.collect(py, None)?;
        let reader: Box<dyn RecordBatchReader + Send> =
            Box::new(RecordBatchIterator::new(batches.into_iter().map(Ok), schema));
        reader.into_pyarrow(py)?.call_method0("read_all")
    }

    /// Runs the query and returns its pyarrow RecordBatches.
    fn to_batches<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let (_, batches) = self.collect(py, None)?;
        batches.iter().map(|b| b.to_pyarrow(py)).collect()
    }

    /// Runs the query and returns a polars DataFrame.
    fn to_polars<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let table = self.to_arrow(py)?;
        py.import("polars")?.call_method1("from_arrow", (table,))
    }

    /// Runs the query and returns a pandas DataFrame.
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.to_arrow(py)?.call_method0("to_pandas")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (header, rows, more) = match self.preview(py) {
            Ok(p) => p,
            Err(e) if e.is_instance_of::<CxlakeError>(py) => return Ok(format!("<cxlake.Result: error: {e}>")),
            Err(e) => return Err(e),
        };
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("| {} |", padded.join(" | "))
        };
        let rule = format!("+{}+", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        let mut out = vec![rule.clone(), line(&header), rule.clone()];
        out.extend(rows.iter().map(|r| line(r)));
        out.push(rule);
        if more {
            out.push(format!("(first {PREVIEW_ROWS} rows shown)"));
        }
        Ok(out.join("\n"))
    }

    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        let (header, rows, more) = match self.preview(py) {
            Ok(p) => p,
            Err(e) if e.is_instance_of::<CxlakeError>(py) => {
                return Ok(format!("<pre>cxlake error: {}</pre>", escape(&e.to_string())))
            }
            Err(e) => return Err(e),
        };
        let mut html = String::from("<table class=\"cxlake-result\">\n<thead><tr>");
        for h in &header {
            html.push_str(&format!("<th>{}</th>", escape(h)));
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for row in &rows {
            html.push_str("<tr>");
            for cell in row {
                html.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody>\n</table>");
        if more {
            html.push_str(&format!("\n<p>first {PREVIEW_ROWS} rows shown</p>"));
        }
        Ok(html)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A running query as a [`RecordBatchReader`]: each `next` blocks on the runtime for the next
/// batch, so an exported C stream computes batches only as its consumer pulls them.
struct BatchStream {
    schema: SchemaRef,
    first: Option<RecordBatch>,
    stream: Option<SendableRecordBatchStream>,
}

impl Iterator for BatchStream {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(batch) = self.first.take() {
            return Some(Ok(batch));
        }
        let stream = self.stream.as_mut()?;
        let rt = runtime();
        loop {
            match rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, stream.next()).await }) {
                Ok(Some(Ok(batch))) => return Some(Ok(batch)),
                Ok(Some(Err(e))) => {
                    self.stream = None;
                    return Some(Err(ArrowError::ExternalError(Box::new(e))));
                }
                Ok(None) => {
                    self.stream = None;
                    return None;
                }
                Err(_elapsed) => {
                    // Ctrl-C while a consumer (pyarrow, polars) pulls batches: stop the query.
                    // The KeyboardInterrupt itself cannot cross the C stream, so the consumer
                    // raises its own error carrying this message.
                    if Python::attach(|py| py.check_signals()).is_err() {
                        self.stream = None;
                        return Some(Err(ArrowError::ExternalError("query cancelled: KeyboardInterrupt".into())));
                    }
                }
            }
        }
    }
}

impl RecordBatchReader for BatchStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[pymodule]
fn _cxlake(m: &Bound<'_, PyModule>) -> PyResult<()> {
    cxlake::allocator::keep_freed_memory();
    m.add_class::<PyLake>()?;
    m.add_class::<QueryResult>()?;
    m.add("CxlakeError", m.py().get_type::<CxlakeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
