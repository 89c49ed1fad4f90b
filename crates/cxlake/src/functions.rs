//! The cxlake functions and their documentation, for `\df`, `\h`, the README's reference and
//! notebook bindings.

use datafusion::logical_expr::Documentation;

/// One cxlake function and its documentation.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    /// `aggregate`, `scalar` or `window`.
    pub kind: &'static str,
    pub documentation: Documentation,
}

impl FunctionInfo {
    /// The first sentence of the description, for one-line listings.
    pub fn summary(&self) -> String {
        let text = self.documentation.description.trim();
        let first = text.split_once(". ").map_or(text, |(s, _)| s);
        first.trim_end_matches('.').to_string()
    }

    /// The full documentation as text: description, syntax, arguments and example.
    pub fn help_text(&self) -> String {
        let doc = &self.documentation;
        let mut out = format!(
            "{} ({})\n\n{}\n\nSyntax:\n    {}\n",
            self.name,
            self.kind,
            doc.description.trim(),
            doc.syntax_example
        );
        if let Some(arguments) = &doc.arguments {
            out.push_str("\nArguments:\n");
            for (name, text) in arguments {
                out.push_str(&format!("    {name}: {text}\n"));
            }
        }
        if let Some(example) = &doc.sql_example {
            out.push_str("\nExample:\n");
            for line in example.trim().lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
        if let Some(related) = &doc.related_udfs {
            out.push_str(&format!("\nSee also: {}\n", related.join(", ")));
        }
        out
    }
}

/// Every cxlake function, sorted by name.
pub fn cxlake_functions() -> Vec<FunctionInfo> {
    let info = |name: &str, kind, documentation: Option<&Documentation>| {
        Some(FunctionInfo { name: name.to_string(), kind, documentation: documentation?.clone() })
    };
    let aggregates = cxlake_udfs::all_aggregates();
    let scalars = cxlake_udfs::all_scalars();
    let windows = cxlake_udfs::all_windows();
    let mut functions: Vec<FunctionInfo> = (aggregates.iter())
        .filter_map(|f| info(f.name(), "aggregate", f.documentation()))
        .chain(scalars.iter().filter_map(|f| info(f.name(), "scalar", f.documentation())))
        .chain(windows.iter().filter_map(|f| info(f.name(), "window", f.documentation())))
        .collect();
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    functions
}

/// One function's information by name (case-insensitive).
pub fn cxlake_function(name: &str) -> Option<FunctionInfo> {
    cxlake_functions().into_iter().find(|f| f.name.eq_ignore_ascii_case(name.trim()))
}

/// The function reference as Markdown, generated from the functions' own documentation; the
/// README embeds it and a test keeps the two identical.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    for f in cxlake_functions() {
        let doc = &f.documentation;
        out.push_str(&format!("#### `{}`\n\n", doc.syntax_example));
        let text = format!("{} ({}). {}", f.summary(), f.kind, rest_of_description(&doc.description));
        out.push_str(&format!("{}\n\n", markdown_text(&text)));
        if let Some(arguments) = &doc.arguments {
            out.push_str("| argument | meaning |\n|---|---|\n");
            for (name, text) in arguments {
                out.push_str(&format!("| `{name}` | {} |\n", markdown_text(text).replace('|', "\\|")));
            }
            out.push('\n');
        }
        if let Some(example) = &doc.sql_example {
            out.push_str(&format!("```sql\n{}\n```\n\n", example.trim()));
        }
    }
    out.trim_end().to_string() + "\n"
}

/// Prose safe in Markdown: `STRUCT<...>` must not read as an HTML tag.
fn markdown_text(text: &str) -> String {
    text.replace('<', "\\<")
}

fn rest_of_description(description: &str) -> &str {
    description.trim().split_once(". ").map_or("", |(_, rest)| rest)
}
