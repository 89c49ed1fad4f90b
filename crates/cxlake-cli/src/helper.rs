//! The REPL's line editor helper: tab completion of keywords, tables, columns, functions and
//! backslash commands, and multi-line input that ends at a `;`.

use cxlake::statements::split_statements;
use cxlake::{Lake, OutputFormat};
use rustyline::completion::{Completer, Pair};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter, Hinter};

use crate::command::{function_names, COMMANDS};

/// SQL keywords offered by completion (a static list: what analysts type most).
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "ALL", "ALTER", "AND", "ANALYZE", "AS", "ASC", "BETWEEN", "BY", "CASE", "CAST", "COPY", "CREATE", "CROSS",
    "CURRENT_DATE", "CURRENT_TIMESTAMP", "DATE", "DELETE", "DESC", "DESCRIBE", "DISTINCT", "DROP", "ELSE", "END",
    "EXCEPT", "EXISTS", "EXPLAIN", "EXTERNAL", "FALSE", "FILTER", "FIRST", "FOLLOWING", "FROM", "FULL", "GROUP",
    "GROUPING", "HAVING", "ILIKE", "IN", "INNER", "INSERT", "INTERSECT", "INTERVAL", "INTO", "IS", "JOIN", "LAST",
    "LATERAL", "LEFT", "LIKE", "LIMIT", "LOCATION", "NATURAL", "NOT", "NULL", "NULLS", "OFFSET", "ON", "OR",
    "ORDER", "OUTER", "OVER", "PARQUET", "PARTITION", "PRECEDING", "QUALIFY", "RANGE", "RECURSIVE", "RIGHT", "ROLLUP", "ROW",
    "ROWS", "SELECT", "SET", "SHOW", "STORED", "TABLE", "TABLES", "THEN", "TIMESTAMP", "TO", "TRUE", "UNBOUNDED",
    "UNION", "UNNEST", "USING", "VALUES", "VIEW", "WHEN", "WHERE", "WINDOW", "WITH",
];

/// The names completion offers besides keywords; refreshed after each statement.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    tables: Vec<String>,
    columns: Vec<String>,
    functions: Vec<String>,
}

impl Vocabulary {
    /// The tables, their columns and the functions of `lake` now.
    pub async fn load(lake: &Lake) -> Self {
        let tables = lake.table_names();
        let mut columns = Vec::new();
        for table in &tables {
            if let Ok(schema) = lake.table_schema(table).await {
                columns.extend(schema.fields().iter().map(|f| f.name().clone()));
            }
        }
        columns.sort();
        columns.dedup();
        Self { tables, columns, functions: function_names(lake) }
    }
}

#[derive(Helper, Hinter, Highlighter)]
pub struct CliHelper {
    vocabulary: Vocabulary,
}

impl CliHelper {
    pub fn new(vocabulary: Vocabulary) -> Self {
        Self { vocabulary }
    }

    pub fn set_vocabulary(&mut self, vocabulary: Vocabulary) {
        self.vocabulary = vocabulary;
    }

    /// Completion candidates for `word`, the partial word before the cursor.
    fn candidates(&self, before: &str, word: &str) -> Vec<Pair> {
        let trimmed = before.trim_start();
        if trimmed.starts_with('\\') {
            return self.command_candidates(trimmed, word);
        }
        if word.is_empty() {
            return Vec::new();
        }
        let lower = word.to_lowercase();
        let mut names: Vec<String> = Vec::new();
        let v = &self.vocabulary;
        for name in v.tables.iter().chain(&v.columns).chain(&v.functions) {
            if name.to_lowercase().starts_with(&lower) {
                names.push(name.clone());
            }
        }
        // Keywords follow the case the user types in.
        let upper = word.chars().any(|c| c.is_uppercase()) && !word.chars().any(|c| c.is_lowercase());
        for keyword in KEYWORDS {
            if keyword.to_lowercase().starts_with(&lower) {
                names.push(if upper { keyword.to_string() } else { keyword.to_lowercase() });
            }
        }
        pairs(names)
    }

    fn command_candidates(&self, line: &str, word: &str) -> Vec<Pair> {
        let Some((command, _)) = line.split_once(char::is_whitespace) else {
            // Still typing the command itself.
            return pairs(COMMANDS.iter().map(|(name, ..)| name.to_string()).filter(|n| n.starts_with(line)).collect());
        };
        let options: Vec<String> = match command {
            "\\d" => self.vocabulary.tables.clone(),
            "\\h" | "\\df" => self.vocabulary.functions.clone(),
            "\\format" => OutputFormat::NAMES.iter().map(|s| s.to_string()).collect(),
            "\\timing" => vec!["on".to_string(), "off".to_string()],
            _ => Vec::new(),
        };
        let lower = word.to_lowercase();
        pairs(options.into_iter().filter(|o| o.to_lowercase().starts_with(&lower)).collect())
    }
}

fn pairs(mut names: Vec<String>) -> Vec<Pair> {
    names.sort();
    names.dedup();
    names.into_iter().map(|name| Pair { display: name.clone(), replacement: name }).collect()
}

/// The byte offset where the word ending at `pos` starts (letters, digits and `_`).
fn word_start(line: &str, pos: usize) -> usize {
    line[..pos]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '\\' || *c == '?')
        .last()
        .map_or(pos, |(i, _)| i)
}

impl Completer for CliHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        Ok((start, self.candidates(&line[..pos], &line[start..pos])))
    }
}

impl Validator for CliHelper {
    /// Input is complete when it is a backslash command (one line), or when nothing but blanks
    /// and comments follows its last top-level `;`.
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if input_is_complete(ctx.input()) { ValidationResult::Valid(None) } else { ValidationResult::Incomplete })
    }
}

pub fn input_is_complete(input: &str) -> bool {
    input.trim_start().starts_with('\\') || cxlake::statements::is_blank(&split_statements(input).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> CliHelper {
        CliHelper::new(Vocabulary {
            tables: vec!["surveys".into(), "tickets".into()],
            columns: vec!["score".into(), "survey_id".into()],
            functions: vec!["nps".into(), "nps_counts".into(), "sum".into()],
        })
    }

    fn complete(line: &str) -> (usize, Vec<String>) {
        let h = helper();
        let start = word_start(line, line.len());
        (start, h.candidates(line, &line[start..]).into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn completes_tables_columns_functions_and_keywords() {
        assert_eq!(complete("SELECT * FROM surv"), (14, vec!["survey_id".to_string(), "surveys".to_string()]));
        assert_eq!(complete("SELECT nps_c").1, vec!["nps_counts"]);
        assert_eq!(complete("SEL").1, vec!["SELECT"]);
        assert_eq!(complete("sel").1, vec!["select"]);
        assert_eq!(complete("SELECT t.sco").1, vec!["score"]);
        assert!(complete("SELECT ").1.is_empty());
    }

    #[test]
    fn completes_commands_and_their_arguments() {
        assert_eq!(complete("\\ti"), (0, vec!["\\timing".to_string()]));
        assert_eq!(complete("\\d tic").1, vec!["tickets"]);
        assert_eq!(complete("\\h nps_").1, vec!["nps_counts"]);
        assert_eq!(complete("\\format js").1, vec!["json"]);
    }

    #[test]
    fn statements_are_complete_at_a_semicolon() {
        assert!(input_is_complete(""));
        assert!(input_is_complete("SELECT 1;"));
        assert!(input_is_complete("SELECT 1; -- done"));
        assert!(!input_is_complete("SELECT 1"));
        assert!(!input_is_complete("SELECT ';"));
        assert!(!input_is_complete("SELECT 1; SELECT 2"));
        assert!(input_is_complete("\\d surveys"));
    }
}
