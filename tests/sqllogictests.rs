//! Runs every `tests/slt/*.slt` file against a fresh lake, twice: in one partition with
//! DataFusion's default batch size, and in four partitions with two-row batches so that every
//! aggregate goes through many partial states and merges.
//!
//! `cargo test -p cxlake-tests --test sqllogictests -- NAME` runs only files whose name
//! contains NAME.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use cxlake::arrow::datatypes::DataType;
use cxlake::{DataFusionError, Lake};
use cxlake_tests::{render_rows, test_lake};
use sqllogictest::{DBOutput, DefaultColumnType};

struct LakeDb {
    lake: Lake,
}

#[async_trait]
impl sqllogictest::AsyncDB for LakeDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let output = self.lake.execute(sql).await?;
        if !output.has_rows() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = output
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                DataType::Float16 | DataType::Float32 | DataType::Float64 => DefaultColumnType::FloatingPoint,
                DataType::Decimal128(..) | DataType::Decimal256(..) => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Text,
            })
            .collect();
        Ok(DBOutput::Rows { types, rows: render_rows(&output.batches)? })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "cxlake"
    }
}

fn slt_files(filter: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| filter.is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() {
    // libtest's flags (--nocapture, --quiet, ...) are accepted and ignored; a bare word filters.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut passed = 0;
    let mut failed = 0;
    for file in slt_files(filter.as_deref()) {
        for (partitions, batch_size) in [(1, 8192), (4, 2)] {
            let label = format!(
                "{} (target_partitions={partitions}, batch_size={batch_size})",
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let mut runner = sqllogictest::Runner::new(move || async move {
                Ok(LakeDb { lake: test_lake(partitions, batch_size).await? })
            });
            match runner.run_file_async(&file).await {
                Ok(()) => {
                    println!("test {label} ... ok");
                    passed += 1;
                }
                Err(e) => {
                    println!("test {label} ... FAILED\n{e}\n");
                    failed += 1;
                }
            }
        }
    }
    println!("\nsqllogictest: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
