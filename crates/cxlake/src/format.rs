//! Every output format of the CLI, rendered from one place so front ends agree.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::WriterBuilder as JsonWriterBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_options;
use datafusion::common::{DataFusionError, Result};

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A boxed table for people at a terminal.
    #[default]
    Table,
    /// RFC 4180 CSV: one header line, then rows; NULL is an empty field.
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// Newline-delimited JSON, one object per row.
    Ndjson,
}

impl OutputFormat {
    pub const NAMES: &'static [&'static str] = &["table", "csv", "tsv", "json", "ndjson"];
}

impl FromStr for OutputFormat {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "tsv" => Ok(Self::Tsv),
            "json" => Ok(Self::Json),
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            other => Err(DataFusionError::Configuration(format!(
                "unknown output format '{other}': use one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Tsv => "tsv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
        })
    }
}

/// Writes a whole result in `format`. Timestamps are ISO 8601 in every format.
pub fn write_batches(
    out: &mut dyn Write,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let options = FormatOptions::default().with_null("NULL").with_types_info(false);
            let table = if batches.iter().all(|b| b.num_rows() == 0) {
                pretty_format_batches_with_options(&[RecordBatch::new_empty(Arc::clone(schema))], &options)?
            } else {
                pretty_format_batches_with_options(batches, &options)?
            };
            writeln!(out, "{table}")?;
        }
        OutputFormat::Csv | OutputFormat::Tsv => {
            let delimiter = if format == OutputFormat::Csv { b',' } else { b'\t' };
            let mut writer = CsvWriterBuilder::new().with_header(true).with_delimiter(delimiter).build(&mut *out);
            let flat_schema = flat_schema(schema);
            // The header is written with the first batch, so an empty result still gets one.
            writer.write(&RecordBatch::new_empty(Arc::clone(&flat_schema)))?;
            for batch in batches {
                writer.write(&flatten_nested(batch, &flat_schema)?)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            // An empty result is still a JSON array: the writer prints `[]`.
            writer.finish()?;
            writeln!(out)?;
        }
        OutputFormat::Ndjson => {
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

fn is_nested(t: &DataType) -> bool {
    t.is_nested() || matches!(t, DataType::Map(..))
}

/// The schema CSV/TSV can hold: nested columns (the STRUCT of `nps_counts`, lists) become text.
fn flat_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if is_nested(f.data_type()) {
                    Arc::new(Field::new(f.name(), DataType::Utf8, true))
                } else {
                    Arc::clone(f)
                }
            })
            .collect::<Vec<_>>(),
    ))
}

fn flatten_nested(batch: &RecordBatch, flat: &SchemaRef) -> Result<RecordBatch> {
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            if !is_nested(column.data_type()) {
                return Ok(Arc::clone(column));
            }
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let mut text = StringBuilder::new();
            for row in 0..column.len() {
                if column.is_null(row) {
                    text.append_null();
                } else {
                    text.append_value(formatter.value(row).to_string());
                }
            }
            Ok(Arc::new(text.finish()) as ArrayRef)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(flat), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray, StructArray, TimestampMillisecondArray};

    fn render(format: OutputFormat, batch: &RecordBatch) -> String {
        let mut out = Vec::new();
        write_batches(&mut out, format, &batch.schema(), std::slice::from_ref(batch)).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn sample() -> RecordBatch {
        let ts = TimestampMillisecondArray::from(vec![Some(1_740_787_200_500), None]).with_timezone("UTC");
        let counts = StructArray::from(vec![(
            Arc::new(Field::new("promoters", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef,
        )]);
        RecordBatch::try_from_iter(vec![
            ("channel", Arc::new(StringArray::from(vec![Some("app"), None])) as ArrayRef),
            ("at", Arc::new(ts) as ArrayRef),
            ("counts", Arc::new(counts) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn csv_has_a_header_empty_nulls_and_iso_timestamps() {
        assert_eq!(
            render(OutputFormat::Csv, &sample()),
            "channel,at,counts\napp,2025-03-01T00:00:00.500Z,{promoters: 3}\n,,{promoters: 4}\n"
        );
    }

    #[test]
    fn empty_results_still_have_headers() {
        let empty = RecordBatch::new_empty(sample().schema());
        assert_eq!(render(OutputFormat::Csv, &empty), "channel,at,counts\n");
        assert_eq!(render(OutputFormat::Json, &empty), "[]\n");
    }

    #[test]
    fn json_keeps_nulls() {
        let json = render(OutputFormat::Ndjson, &sample());
        assert!(json.lines().nth(1).unwrap().contains("\"channel\":null"), "{json}");
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("TSV".parse::<OutputFormat>().unwrap(), OutputFormat::Tsv);
        assert!("xml".parse::<OutputFormat>().unwrap_err().to_string().contains("table, csv"));
    }
}
