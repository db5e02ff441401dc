//! The commands phasegate suggests in its output (`phasegate mark …`,
//! `phasegate resolve …`) run as printed: when this run was given
//! `--config FILE`, each carries it too, or it would look for
//! `phasegate.yaml` in the current folder instead.

use std::path::Path;
use std::sync::OnceLock;

/// ` --config FILE`, when this run was given one.
static FLAG: OnceLock<String> = OnceLock::new();

/// Remembers the `--config` of this run, unless it is the file phasegate
/// reads without it (`phasegate.yaml` here). A path a shell or a JSON
/// string would not pass through as written (quotes, spaces, backslashes)
/// is left out: the suggestions then stay as they are.
pub fn remember_config(config: Option<&Path>) {
    let Some(path) = config.and_then(Path::to_str) else {
        return;
    };
    let default = std::fs::canonicalize(phasegate::config::CONFIG_FILE).ok();
    if default.is_some() && std::fs::canonicalize(path).ok() == default {
        return;
    }
    let plain = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,=".contains(c));
    if plain {
        let _ = FLAG.set(format!("--config {path}"));
    }
}

/// `text` with `--config FILE` after `phasegate` in every suggested
/// command: one between backticks, or after `then: `.
pub fn with_config(text: &str) -> std::borrow::Cow<'_, str> {
    match FLAG.get() {
        Some(flag) => std::borrow::Cow::Owned(insert(text, flag)),
        None => std::borrow::Cow::Borrowed(text),
    }
}

fn insert(text: &str, flag: &str) -> String {
    let mut out = text.to_string();
    for lead in ["`phasegate ", "then: phasegate "] {
        let mut from = 0;
        while let Some(at) = out[from..].find(lead) {
            let end = from + at + lead.len();
            if !out[end..].starts_with("--config ") {
                out.insert_str(end, &format!("{flag} "));
            }
            from = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suggestion_gets_the_config_once() {
        let flag = "--config conf/pg.yaml";
        assert_eq!(
            insert(
                "run `phasegate apply --env dev p` or `phasegate --config conf/pg.yaml plan p`\nthen: phasegate mark --env dev p --phase 2 --app-version VERSION\nphasegate status",
                flag
            ),
            "run `phasegate --config conf/pg.yaml apply --env dev p` or `phasegate --config conf/pg.yaml plan p`\nthen: phasegate --config conf/pg.yaml mark --env dev p --phase 2 --app-version VERSION\nphasegate status"
        );
        assert_eq!(insert("no suggestion", flag), "no suggestion");
    }
}
