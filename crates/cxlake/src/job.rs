//! Batch jobs: a file of statements with `${name}` parameters, checked before anything runs.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::{plan_err, Result};

/// The `${name}` references of `text`, in order of first use.
fn references(text: &str) -> Result<Vec<(usize, usize, String)>> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("${").map(|i| rest + i) {
        let Some(len) = text[start + 2..].find('}') else {
            return plan_err!("unterminated parameter reference at byte {start}: write ${{name}}");
        };
        let name = &text[start + 2..start + 2 + len];
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return plan_err!("invalid parameter name '${{{name}}}': use letters, digits and _");
        }
        found.push((start, start + 3 + len, name.to_string()));
        rest = start + 3 + len;
    }
    Ok(found)
}

/// Replaces every `${name}` of `text` with its value. A reference without a value, or a value
/// that the text never uses (a misspelt `--param`), is an error naming it, before anything runs.
pub fn substitute(text: &str, params: &BTreeMap<String, String>) -> Result<String> {
    let refs = references(text)?;
    let used: BTreeSet<&str> = refs.iter().map(|(_, _, n)| n.as_str()).collect();
    let missing: Vec<&str> = used.iter().copied().filter(|n| !params.contains_key(*n)).collect();
    if !missing.is_empty() {
        let given = missing.iter().map(|n| format!("--param {n}=VALUE")).collect::<Vec<_>>().join(" ");
        return plan_err!(
            "the job uses parameter{} {} with no value: give {given}",
            if missing.len() == 1 { "" } else { "s" },
            missing.iter().map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(", ")
        );
    }
    let unknown: Vec<&str> = params.keys().map(String::as_str).filter(|n| !used.contains(n)).collect();
    if !unknown.is_empty() {
        let uses = if used.is_empty() {
            "no parameters".to_string()
        } else {
            used.iter().map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(", ")
        };
        return plan_err!(
            "unknown parameter{} {}: the job uses {uses}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        );
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, name) in refs {
        out.push_str(&text[last..start]);
        out.push_str(&params[&name]);
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Parses a byte size: a number with an optional K, M, G or T suffix (powers of 1024; a
/// trailing `B` or `iB` is accepted), as in `--memory-limit 4G`.
pub fn parse_size(text: &str) -> Result<usize> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let digits_end = upper.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(upper.len());
    let (number, unit) = upper.split_at(digits_end);
    let factor: f64 = match unit.trim().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return plan_err!("invalid size '{text}': use a number with K, M, G or T (for example 4G or 512M)"),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && (n * factor).is_finite() => Ok((n * factor) as usize),
        _ => plan_err!("invalid size '{text}': use a positive number with K, M, G or T (for example 4G or 512M)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn substitutes_every_reference() {
        let text = "SELECT * FROM t WHERE day = DATE '${run_date}' AND c = '${channel}' OR d = '${run_date}'";
        let out = substitute(text, &params(&[("run_date", "2025-03-01"), ("channel", "web")])).unwrap();
        assert_eq!(out, "SELECT * FROM t WHERE day = DATE '2025-03-01' AND c = 'web' OR d = '2025-03-01'");
    }

    #[test]
    fn missing_and_unknown_parameters_are_errors() {
        let e = substitute("SELECT '${a}', '${b}'", &params(&[("a", "1")])).unwrap_err().to_string();
        assert!(e.contains("${b} with no value: give --param b=VALUE"), "{e}");
        let e = substitute("SELECT '${a}'", &params(&[("a", "1"), ("rundate", "x")])).unwrap_err().to_string();
        assert!(e.contains("unknown parameter rundate: the job uses ${a}"), "{e}");
        let e = substitute("SELECT '${a b}'", &params(&[])).unwrap_err().to_string();
        assert!(e.contains("invalid parameter name"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("4X").is_err());
        assert!(parse_size("-1G").is_err());
    }
}
