//! cxlake's `array_element` (`list[i]`, udfs/src/list_element.rs) against DataFusion's own, the
//! reference implementation, on the same rows: lists of integers, strings and lists, as `List`
//! and `LargeList`, with NULL lists, empty lists and NULL elements, indexed by every constant from
//! -4 to 4 and by a column of indexes with NULLs. The results and the column names must be
//! DataFusion's, and the plan must run cxlake's function (so the comparison compares something).

use cxlake::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use cxlake::datafusion::logical_expr::Expr;
use cxlake::datafusion::prelude::SessionContext;
use cxlake::udfs::list_element::ListElement;
use cxlake::Lake;
use cxlake_tests::render_rows;

const TABLE: &str = r#"CREATE TABLE lists AS SELECT
    value AS v,
    CASE WHEN value % 11 = 0 THEN NULL
        ELSE array_slice(make_array(value, CASE WHEN value % 3 = 0 THEN NULL ELSE value * 2 END, value * 3, value * 5),
            1, value % 5) END AS ints,
    array_slice(make_array('s' || value, CASE WHEN value % 4 = 0 THEN NULL ELSE 'a-string-past-twelve-bytes-' || value END),
        1, value % 3) AS strs,
    CASE WHEN value % 7 = 0 THEN NULL ELSE make_array(make_array(value), make_array(value, value + 1)) END AS nested,
    CASE WHEN value % 13 = 0 THEN NULL ELSE CAST(value % 9 AS BIGINT) - 4 END AS idx
FROM generate_series(0, 4999)"#;

fn queries() -> Vec<String> {
    let mut queries: Vec<String> = (-4..=4)
        .map(|i| {
            format!(
                "SELECT v, ints[{i}], strs[{i}], nested[{i}], arrow_cast(ints, 'LargeList(Int64)')[{i}] \
                 FROM lists ORDER BY v"
            )
        })
        .collect();
    queries.push(
        "SELECT v, ints[idx], array_element(strs, idx), list_extract(nested, idx), \
         arrow_cast(strs, 'LargeList(Utf8)')[idx] FROM lists ORDER BY v"
            .into(),
    );
    queries
}

async fn results(ctx: &SessionContext, sql: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let names = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    (names, render_rows(&batches).unwrap())
}

#[tokio::test]
async fn list_elements_match_datafusion() {
    let lake = Lake::builder().target_partitions(3).batch_size(777).build().await.unwrap();
    lake.execute(TABLE).await.unwrap();
    let plain = SessionContext::new();
    plain.sql(TABLE).await.unwrap().collect().await.unwrap();

    for sql in queries() {
        let ours = results(lake.context(), &sql).await;
        let reference = results(&plain, &sql).await;
        assert_eq!(ours.0, reference.0, "{sql}: column names");
        assert_eq!(ours.1.len(), 5000, "{sql}");
        assert_eq!(ours.1, reference.1, "{sql}");
    }
}

#[tokio::test]
async fn plans_run_cxlake_list_element() {
    let lake = Lake::builder().build().await.unwrap();
    lake.execute(TABLE).await.unwrap();
    let plan = lake.sql("SELECT ints[1], list_extract(strs, -1) FROM lists").await.unwrap().into_optimized_plan();
    let mut ours = 0;
    plan.unwrap()
        .apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    assert_eq!(f.func.name(), "array_element");
                    ours += f.func.inner().downcast_ref::<ListElement>().is_some() as usize;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
        .unwrap();
    assert_eq!(ours, 2, "both calls run cxlake's list element");
}
