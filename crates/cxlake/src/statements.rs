//! Splitting SQL text into statements at top-level semicolons, for `-f` files, repeated `-c`
//! text and the REPL's multi-line input. Semicolons inside quotes and comments do not split.

/// The statements of `text` that end with `;`, and the text after the last one (an incomplete
/// statement, or only whitespace and comments).
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let bytes = text.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        // A doubled quote is an escaped quote inside the literal.
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                let statement = text[start..i].trim();
                if !is_blank(statement) {
                    statements.push(statement.to_string());
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let rest = text.get(start..).unwrap_or("").trim().to_string();
    (statements, rest)
}

/// Every statement of a script; a final statement without `;` counts too.
pub fn script_statements(text: &str) -> Vec<String> {
    let (mut statements, rest) = split_statements(text);
    if !is_blank(&rest) {
        statements.push(rest);
    }
    statements
}

/// Whether text holds nothing but whitespace and comments.
pub fn is_blank(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let (stmts, rest) = split_statements(
            "SELECT ';' AS a; -- a comment; here\nSELECT \"x;y\" FROM t /* ; */ ;\n SELECT 'it''s;'; SELECT 1",
        );
        assert_eq!(
            stmts,
            vec!["SELECT ';' AS a", "-- a comment; here\nSELECT \"x;y\" FROM t /* ; */", "SELECT 'it''s;'"]
        );
        assert_eq!(rest, "SELECT 1");
    }

    #[test]
    fn comments_and_empty_statements_are_not_statements() {
        assert_eq!(script_statements(";; -- only a comment\n/* and this */"), Vec::<String>::new());
        assert_eq!(script_statements("SELECT 1;\nSELECT 2"), vec!["SELECT 1", "SELECT 2"]);
        assert!(is_blank("  -- x\n /* y */ "));
        assert!(!is_blank("-- x\nSELECT 1"));
    }

    #[test]
    fn an_open_quote_leaves_the_statement_incomplete() {
        let (stmts, rest) = split_statements("SELECT 'a;");
        assert!(stmts.is_empty());
        assert_eq!(rest, "SELECT 'a;");
    }
}
