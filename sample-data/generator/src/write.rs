//! Building Arrow columns and writing them to deterministic Parquet files.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The `created_by` string written into every file's footer, instead of parquet-rs's default
/// (which embeds the library version and would change the bytes on every upgrade).
pub const CREATED_BY: &str = "cxlake-sample-gen";

/// A table under construction: named, typed columns in order.
#[derive(Default)]
pub struct Table {
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
}

fn nullable<T>(values: &[Option<T>]) -> bool {
    values.iter().any(Option::is_none)
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, nullable: bool, array: ArrayRef) -> &mut Self {
        self.fields.push(Field::new(name, array.data_type().clone(), nullable));
        self.columns.push(array);
        self
    }

    pub fn i64(&mut self, name: &str, values: Vec<i64>) -> &mut Self {
        self.push(name, false, Arc::new(Int64Array::from(values)))
    }

    pub fn opt_i64(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        let n = nullable(&values);
        self.push(name, n, Arc::new(Int64Array::from(values)))
    }

    pub fn i32(&mut self, name: &str, values: Vec<i32>) -> &mut Self {
        self.push(name, false, Arc::new(Int32Array::from(values)))
    }

    pub fn opt_i32(&mut self, name: &str, values: Vec<Option<i32>>) -> &mut Self {
        let n = nullable(&values);
        self.push(name, n, Arc::new(Int32Array::from(values)))
    }

    pub fn f64(&mut self, name: &str, values: Vec<f64>) -> &mut Self {
        self.push(name, false, Arc::new(Float64Array::from(values)))
    }

    pub fn bool(&mut self, name: &str, values: Vec<bool>) -> &mut Self {
        self.push(name, false, Arc::new(BooleanArray::from(values)))
    }

    pub fn str(&mut self, name: &str, values: Vec<&str>) -> &mut Self {
        self.push(name, false, Arc::new(StringArray::from(values)))
    }

    /// DECIMAL(precision, scale) from unscaled integers (e.g. cents for scale 2).
    pub fn decimal(&mut self, name: &str, precision: u8, scale: i8, unscaled: Vec<i128>) -> &mut Self {
        let array = Decimal128Array::from(unscaled)
            .with_precision_and_scale(precision, scale)
            .expect("valid decimal precision and scale");
        self.push(name, false, Arc::new(array))
    }

    /// TIMESTAMP(ms, "UTC") from epoch milliseconds.
    pub fn ts_ms_utc(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        let n = nullable(&values);
        let array = TimestampMillisecondArray::from(values).with_timezone("UTC");
        self.push(name, n, Arc::new(array))
    }

    /// TIMESTAMP(us, "UTC") from epoch microseconds.
    pub fn ts_us_utc(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        let n = nullable(&values);
        let array = TimestampMicrosecondArray::from(values).with_timezone("UTC");
        self.push(name, n, Arc::new(array))
    }

    /// TIMESTAMP(ns, "UTC") from epoch nanoseconds.
    pub fn ts_ns_utc(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        let n = nullable(&values);
        let array = TimestampNanosecondArray::from(values).with_timezone("UTC");
        self.push(name, n, Arc::new(array))
    }

    /// TIMESTAMP(ns) without a time zone (a "naive" wall-clock value, here UTC wall clock).
    pub fn ts_ns_naive(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        let n = nullable(&values);
        self.push(name, n, Arc::new(TimestampNanosecondArray::from(values)))
    }

    /// Writes the table as a single-row-group, ZSTD-compressed Parquet file and returns its row
    /// count.
    pub fn write(&self, path: &Path) -> Result<usize> {
        let schema = Arc::new(Schema::new(self.fields.clone()));
        let batch = RecordBatch::try_new(schema.clone(), self.columns.clone())?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(9)?))
            .set_created_by(CREATED_BY.to_string())
            .set_max_row_group_row_count(None)
            .build();
        let file = File::create(path)?;
        let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(batch.num_rows())
    }
}

/// A column as read back: name, type, nullable.
pub type ColumnInfo = (String, DataType, bool);

/// Reads a written file back and returns its row count and schema (a cheap self-check).
pub fn read_back(path: &Path) -> Result<(usize, Vec<ColumnInfo>)> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let schema = builder.schema().clone();
    let mut rows = 0;
    for batch in builder.build()? {
        rows += batch?.num_rows();
    }
    let fields = schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable())).collect();
    Ok((rows, fields))
}

/// Short SQL-ish spelling of an Arrow type, for the summary printed after generation.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 => "STRING".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("TIMESTAMP({unit}, \"{tz}\")"),
                None => format!("TIMESTAMP({unit})"),
            }
        }
        other => format!("{other}"),
    }
}
