//! Runs every query of `docs/metrics-guide.md` against the sample lake and checks its printed
//! result, so the guide cannot drift from the code.
//!
//! In the guide, a ```sql block followed by a ```text block is a query and its result (the last
//! statement's rows, in cxlake's table format). `CXLAKE_UPDATE_GUIDE=1 cargo test -p
//! cxlake-tests --test metrics_guide` rewrites the result blocks from what the queries print.

use std::path::Path;

use cxlake::format::write_batches;
use cxlake::statements::script_statements;
use cxlake::OutputFormat;
use cxlake_tests::test_lake;

struct Example {
    sql: String,
    /// Byte range of the result block's contents in the guide.
    result: std::ops::Range<usize>,
}

/// The sql/text block pairs of the guide.
fn examples(guide: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut rest = 0;
    while let Some(start) = guide[rest..].find("```sql\n") {
        let sql_start = rest + start + "```sql\n".len();
        let sql_end = sql_start + guide[sql_start..].find("```\n").expect("unterminated sql block");
        let after = sql_end + "```\n".len();
        rest = after;
        let gap = &guide[after..];
        let trimmed = gap.trim_start_matches('\n');
        if let Some(body) = trimmed.strip_prefix("```text\n") {
            let result_start = guide.len() - body.len();
            let result_end = result_start + body.find("```\n").expect("unterminated text block");
            examples.push(Example { sql: guide[sql_start..sql_end].to_string(), result: result_start..result_end });
            rest = result_end;
        }
    }
    examples
}

#[tokio::test]
async fn every_query_in_the_metrics_guide_prints_its_documented_result() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics-guide.md");
    let guide = std::fs::read_to_string(&path).expect("docs/metrics-guide.md");
    let examples = examples(&guide);
    assert!(examples.len() >= 20, "expected a query per metric, found {}", examples.len());
    let update = std::env::var_os("CXLAKE_UPDATE_GUIDE").is_some();
    let mut updated = guide.clone();
    let mut failures = Vec::new();
    // From the last example backwards, so that earlier byte ranges stay valid while rewriting.
    for example in examples.iter().rev() {
        // A fresh lake per example: a SET in one example does not leak into the next.
        let lake = test_lake(2, 8192).await.unwrap();
        let mut printed = Vec::new();
        for statement in script_statements(&example.sql) {
            match lake.execute(&statement).await {
                Ok(output) if output.has_rows() => {
                    printed.clear();
                    write_batches(&mut printed, OutputFormat::Table, &output.schema, &output.batches).unwrap();
                }
                Ok(_) => {}
                Err(e) => printed = format!("Error: {e}\n").into_bytes(),
            }
        }
        let printed = String::from_utf8(printed).unwrap();
        if update {
            updated.replace_range(example.result.clone(), &printed);
        } else if guide[example.result.clone()] != printed {
            failures.push(format!(
                "{}\n--- documented ---\n{}--- printed ---\n{}",
                example.sql,
                &guide[example.result.clone()],
                printed
            ));
        }
    }
    if update {
        std::fs::write(&path, updated).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} guide results differ (CXLAKE_UPDATE_GUIDE=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
