//! "Did you mean …?" for misspelt names in plan files and on the command line.

/// The candidate closest to `given`, if any is close enough to be a likely typo.
pub fn nearest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(given, c), *c))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"`, or an empty string when nothing is close.
pub fn did_you_mean(given: &str, candidates: &[&str]) -> String {
    match nearest(given, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

/// "unknown format `jsn`, did you mean `json`? (expected one of: text, json)".
pub fn unknown(what: &str, given: &str, candidates: &[&str]) -> String {
    let hint = match nearest(given, candidates) {
        Some(c) => format!(", did you mean `{c}`?"),
        None => String::new(),
    };
    format!(
        "unknown {what} `{given}`{hint} (expected one of: {})",
        candidates.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        let kinds = ["rename_column", "add_column", "drop_column"];
        assert_eq!(nearest("rename_colum", &kinds), Some("rename_column"));
        assert_eq!(nearest("add_colunm", &kinds), Some("add_column"));
        assert_eq!(nearest("xyz", &kinds), None);
    }
}
