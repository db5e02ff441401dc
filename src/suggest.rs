//! "Did you mean …?" for misspelt names in plan files and on the command line.

/// The candidate closest to `given`, if any is close enough to be a likely
/// typo: within a few edits (optimal string alignment distance, which counts
/// a swap of two neighbours as one: `dve` → `dev`) or similar by Jaro-Winkler
/// (shared prefix, letters out of place: `rename_colum`). The fewest edits
/// win; among equals, the most similar.
pub fn nearest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let max_edits = (given.chars().count() / 4).max(1);
    candidates
        .iter()
        .map(|c| {
            (
                strsim::osa_distance(given, c),
                strsim::jaro_winkler(given, c),
                *c,
            )
        })
        .filter(|(edits, similar, _)| *edits <= max_edits || *similar >= 0.75)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
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
        let envs = ["dev", "staging", "prod"];
        assert_eq!(nearest("dve", &envs), Some("dev"));
        assert_eq!(nearest("stagign", &envs), Some("staging"));
        assert_eq!(nearest("prdo", &envs), Some("prod"));
        assert_eq!(nearest("qa", &envs), None);
    }
}
