//! Shared set-up for cxlake's SQL-level tests: lakes with a chosen parallelism and batch size,
//! and result rendering that is stable across partitionings.

use cxlake::arrow::array::{Array, ArrayRef, AsArray};
use cxlake::arrow::compute::cast;
use cxlake::arrow::datatypes::{DataType, Float32Type, Float64Type};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::arrow::util::display::{ArrayFormatter, FormatOptions};
use cxlake::{Lake, Result};

pub mod servers;

/// A lake over the sample data with `partitions` target partitions and `batch_size` rows per
/// batch; small batches make every aggregate merge many partial states.
pub async fn test_lake(partitions: usize, batch_size: usize) -> Result<Lake> {
    Lake::builder().with_sample_lake().target_partitions(partitions).batch_size(batch_size).build().await
}

/// A float as sqllogictest files write it: 12 significant digits, trailing zeros trimmed, so
/// that expected values can be written by hand and do not depend on summation order.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = 12 - 1 - v.abs().log10().floor() as i32;
    let text = format!("{:.*}", digits.max(0) as usize, v);
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

/// Every cell of a result as text: NULL as `NULL`, floats as [`format_float`], anything else
/// as Arrow displays it (structs as `{field: value, ...}`).
pub fn render_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, formatter)| render_cell(column, formatter, row))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

fn render_cell(column: &ArrayRef, formatter: &ArrayFormatter, row: usize) -> String {
    if column.is_null(row) {
        return "NULL".into();
    }
    match column.data_type() {
        DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => format_float(column.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Struct(_) => {
            // Struct fields are rendered with the same float rule, so `nps_ci` reads well.
            let s = column.as_struct();
            let parts: Vec<String> = s
                .fields()
                .iter()
                .zip(s.columns())
                .map(|(f, c)| {
                    let options = FormatOptions::default().with_null("NULL");
                    let inner = ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter");
                    format!("{}: {}", f.name(), render_cell(c, &inner, row))
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        _ => {
            let text = formatter.value(row).to_string();
            if text.is_empty() {
                "(empty)".into()
            } else {
                text
            }
        }
    }
}

/// Every cell of a one-statement result as an optional f64.
pub async fn cells(lake: &Lake, sql: &str) -> Vec<Vec<Option<f64>>> {
    let output = lake.execute(sql).await.unwrap_or_else(|e| panic!("{sql}\n{e}"));
    let mut rows = Vec::new();
    for batch in &output.batches {
        let columns: Vec<ArrayRef> =
            batch.columns().iter().map(|c| cast(c, &DataType::Float64).expect("numeric result")).collect();
        for row in 0..batch.num_rows() {
            rows.push(
                columns.iter().map(|c| (!c.is_null(row)).then(|| c.as_primitive::<Float64Type>().value(row))).collect(),
            );
        }
    }
    rows
}

/// Asserts that a metric and its plain-SQL formulation agree: both NULL, or within 1e-12
/// relative (absolute below 1).
pub fn assert_close(context: &str, metric: Option<f64>, plain: Option<f64>) {
    match (metric, plain) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            let scale = a.abs().max(b.abs()).max(1.0);
            assert!((a - b).abs() <= 1e-12 * scale, "{context}: cxlake {a} vs plain SQL {b}");
        }
        _ => panic!("{context}: cxlake {metric:?} vs plain SQL {plain:?}"),
    }
}

/// Asserts that batches built through the DataFrame API match `sql` (rows from [`cells`], first
/// column the group key) cell by cell, and that there are at least `min_rows` rows.
pub fn assert_batches_close(built: &[RecordBatch], sql: &[Vec<Option<f64>>], min_rows: usize) {
    let mut row = 0;
    for batch in built {
        for r in 0..batch.num_rows() {
            for (c, expected) in sql[row].iter().enumerate().skip(1) {
                let column = cast(batch.column(c), &DataType::Float64).unwrap();
                let value = (!column.is_null(r)).then(|| column.as_primitive::<Float64Type>().value(r));
                assert_close(&format!("builder column {c}, row {row}"), value, *expected);
            }
            row += 1;
        }
    }
    assert_eq!(row, sql.len());
    assert!(row >= min_rows, "expected every generated group, got {row}");
}

/// The Python interpreter of the test venv (with the reference packages of
/// `scripts/requirements.txt`), as exported by `scripts/test` in `CXLAKE_PYTHON`.
///
/// Tests that compare with a Python reference implementation call this; run through `cargo test`
/// alone they fail here with the way out rather than pass without checking anything.
pub fn reference_python() -> std::path::PathBuf {
    match std::env::var_os("CXLAKE_PYTHON") {
        Some(path) if std::path::Path::new(&path).exists() => path.into(),
        _ => panic!(
            "this test runs a Python reference implementation: run it through `bash scripts/test`, which \
             creates the venv and sets CXLAKE_PYTHON, or set CXLAKE_PYTHON to a python with the packages of \
             scripts/requirements.txt"
        ),
    }
}

/// Runs `script` with the reference Python (arguments after it) and returns its stdout; panics with
/// its stderr when it fails.
pub fn run_reference_python(script: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(reference_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start the reference Python");
    assert!(
        output.status.success(),
        "reference Python failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output from the reference Python")
}

#[cfg(test)]
mod tests {
    use super::format_float;

    #[test]
    fn floats_keep_twelve_significant_digits() {
        assert_eq!(format_float(28.571428571428573), "28.5714285714");
        assert_eq!(format_float(-100.0), "-100");
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(1.5e-7), "0.00000015");
        assert_eq!(format_float(-0.0), "0");
    }
}
