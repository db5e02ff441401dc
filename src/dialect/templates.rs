//! The SQL templates, one file per intent kind and dialect
//! (`templates/<dialect>/<kind>.sql`), rendered with minijinja.
//!
//! A template is a set of named blocks, one per piece of SQL a recipe asks
//! for (`{% block add_column %}…{% endblock %}`). The built-in templates are
//! compiled into the binary; a project's own `templates/` folder, laid out the
//! same way, overrides them file by file.
//!
//! Quoting is enforced, not hoped for: the engine prints only values that went
//! through one of three filters, and fails the render otherwise.
//! - `ident` quotes a name, or a list of parts as a qualified name
//!   (`["billing", "invoices"]` → `"billing"."invoices"`);
//! - `idents` quotes a list of names and joins them with `, `;
//! - `literal` quotes a string literal;
//! - `sql` passes through an SQL fragment the plan's author wrote on purpose
//!   (a type, a default or check expression), already validated by the parser.
//!
//! A Postgres template writes a dollar quote's tag as `{{ dollar_quote }}`.
//! Once a block is rendered, each of its marks becomes the first tag of
//! `$phasegate$`, `$phasegate_1$`, `$phasegate_2$`, … that occurs nowhere
//! else in the block, so no name, literal or expression in the body can close
//! the quote early ([`choose_dollar_tags`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::Dialect;
use crate::name::Ident;

/// A template that could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {path} is not valid: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<minijinja::Error>,
    },
    #[error("no template `{name}` for this dialect")]
    Missing { name: String },
    #[error("template `{name}`, block `{block}`: {source}")]
    Render {
        name: String,
        block: String,
        source: Box<minijinja::Error>,
    },
}

/// The loaded templates of one dialect.
pub struct Templates {
    env: Environment<'static>,
    dialect: Dialect,
    /// Template files that came from the project rather than the binary.
    overridden: Vec<PathBuf>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("dialect", &self.dialect)
            .field("overridden", &self.overridden)
            .finish()
    }
}

impl Templates {
    /// The templates compiled into phasegate.
    pub fn builtin(dialect: Dialect) -> Templates {
        let mut env = Environment::new();
        // Syntax settings apply to templates loaded after them.
        configure(&mut env, dialect);
        minijinja_embed::load_templates!(&mut env);
        Templates {
            env,
            dialect,
            overridden: Vec::new(),
        }
    }

    /// The built-in templates, overridden by any `<dir>/<dialect>/*.sql` file.
    /// A folder that does not exist overrides nothing.
    pub fn with_overrides(dialect: Dialect, dir: &Path) -> Result<Templates, TemplateError> {
        let mut templates = Templates::builtin(dialect);
        let folder = dir.join(dialect.name());
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(templates),
            Err(source) => {
                return Err(TemplateError::Read {
                    path: folder,
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for path in files {
            let source = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                path: path.clone(),
                source,
            })?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = format!("{}/{}", dialect.name(), file);
            // Identical to the built-in (running inside phasegate's own repository): nothing overridden.
            if templates
                .env
                .get_template(&name)
                .is_ok_and(|t| t.source() == source)
            {
                continue;
            }
            templates
                .env
                .add_template_owned(name, source)
                .map_err(|e| TemplateError::Invalid {
                    path: path.clone(),
                    source: Box::new(e),
                })?;
            templates.overridden.push(path);
        }
        Ok(templates)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Project template files in effect instead of built-in ones.
    pub fn overridden(&self) -> &[PathBuf] {
        &self.overridden
    }

    /// Renders the named blocks of `<dialect>/<kind>.sql` with `ctx`.
    /// Each block is trimmed; a block that renders to nothing is an empty string.
    pub fn render(
        &self,
        kind: &str,
        ctx: &Value,
        blocks: &[&'static str],
    ) -> Result<Blocks, TemplateError> {
        let name = format!("{}/{}.sql", self.dialect.name(), kind);
        let template = self
            .env
            .get_template(&name)
            .map_err(|_| TemplateError::Missing { name: name.clone() })?;
        let render_err = |block: &str, e: minijinja::Error| TemplateError::Render {
            name: name.clone(),
            block: block.to_string(),
            source: Box::new(e),
        };
        let mut captured = template
            .render_captured(ctx.clone())
            .map_err(|e| render_err("(top level)", e))?;
        let mut out = HashMap::with_capacity(blocks.len());
        for &block in blocks {
            let text = captured
                .with_state_mut(|state| state.render_block(block))
                .map_err(|e| render_err(block, e))?;
            out.insert(block, choose_dollar_tags(&tidy(&text)));
        }
        Ok(Blocks(out))
    }
}

/// Rendered blocks, by name.
#[derive(Debug)]
pub struct Blocks(HashMap<&'static str, String>);

impl Blocks {
    /// The rendered text of a block that was asked for ("" for any other).
    pub fn get(&self, block: &str) -> String {
        self.0.get(block).cloned().unwrap_or_default()
    }

    /// The block's text, or `None` when it rendered to nothing.
    pub fn optional(&self, block: &str) -> Option<String> {
        self.0.get(block).filter(|s| !s.is_empty()).cloned()
    }
}

/// What `{{ dollar_quote }}` renders to before a tag is chosen: a NUL, which
/// no name (control characters are refused), no plan expression (likewise)
/// and no Postgres text (which cannot hold one) contains.
const DOLLAR_QUOTE_MARK: &str = "\u{0}phasegate-dollar-quote\u{0}";

/// Replaces every mark `{{ dollar_quote }}` rendered to in `text` with one dollar-quote tag
/// that occurs nowhere else in the result: `$phasegate$`, or else the first
/// free `$phasegate_<n>$`.
pub fn choose_dollar_tags(text: &str) -> String {
    let marks = text.matches(DOLLAR_QUOTE_MARK).count();
    if marks == 0 {
        return text.to_string();
    }
    // Every candidate that fails occurs in `text` (or straddles a mark), so
    // at most text.len() candidates are tried.
    for n in 0..=text.len() {
        let tag = if n == 0 {
            "$phasegate$".to_string()
        } else {
            format!("$phasegate_{n}$")
        };
        let out = text.replace(DOLLAR_QUOTE_MARK, &tag);
        if out.matches(tag.as_str()).count() == marks {
            return out;
        }
    }
    // Unreachable: text.len() + 1 candidates cannot all occur in text.
    text.replace(DOLLAR_QUOTE_MARK, "$phasegate_unreachable$")
}

/// Trims a rendered block and drops blank lines left by template tags.
fn tidy(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("\n")
}

fn configure(env: &mut Environment<'static>, dialect: Dialect) {
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Any escape mode other than None makes macro and `{% set %}` output safe
    // strings; that output was itself printed through the formatter below.
    env.set_auto_escape_callback(|_| AutoEscape::Custom("sql".into()));
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_formatter(|out, _state, value| {
        if value.is_safe() || value.kind() == ValueKind::Number {
            write!(out, "{value}").map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "write failed"))
        } else {
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("refusing to print {value:?} unquoted: pass it through |ident, |idents, |literal or |sql"),
            ))
        }
    });
    env.add_global(
        "dollar_quote",
        Value::from_safe_string(DOLLAR_QUOTE_MARK.to_string()),
    );
    env.add_filter("ident", move |v: Value| {
        quote_name(dialect, &v).map(Value::from_safe_string)
    });
    env.add_filter(
        "idents",
        move |v: Value| -> Result<Value, minijinja::Error> {
            let parts = v
                .try_iter()?
                .map(|item| quote_name(dialect, &item))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::from_safe_string(parts.join(", ")))
        },
    );
    env.add_filter(
        "literal",
        move |v: Value| -> Result<Value, minijinja::Error> {
            match v.as_str() {
                Some(s) => Ok(Value::from_safe_string(dialect.quote_literal(s))),
                None if v.kind() == ValueKind::Number => Ok(Value::from_safe_string(v.to_string())),
                None => Err(not_a("literal", &v)),
            }
        },
    );
    env.add_filter("sql", |v: Value| -> Result<Value, minijinja::Error> {
        match v.as_str() {
            Some(s) => Ok(Value::from_safe_string(s.to_string())),
            None => Err(not_a("sql fragment", &v)),
        }
    });
}

impl From<&Ident> for Value {
    fn from(i: &Ident) -> Value {
        Value::from(i.as_str())
    }
}

impl From<Ident> for Value {
    fn from(i: Ident) -> Value {
        Value::from(i.as_str())
    }
}

/// A string is one identifier; a list of strings is a qualified name.
fn quote_name(dialect: Dialect, v: &Value) -> Result<String, minijinja::Error> {
    if let Some(s) = v.as_str() {
        return Ok(dialect.quote_ident(s));
    }
    if v.kind() == ValueKind::Seq {
        let parts = v
            .try_iter()?
            .map(|p| {
                p.as_str()
                    .map(|s| dialect.quote_ident(s))
                    .ok_or_else(|| not_a("name", &p))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(parts.join("."));
    }
    Err(not_a("name", v))
}

fn not_a(what: &str, v: &Value) -> minijinja::Error {
    minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("{v:?} is not a {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(src: &str, ctx: Value) -> Result<String, minijinja::Error> {
        let mut env = Environment::new();
        configure(&mut env, Dialect::Postgres);
        env.render_str(src, ctx)
    }

    #[test]
    fn names_and_literals_are_quoted_by_the_filters() {
        let ctx = context! { t => vec!["billing", "in\"voices"], c => "user", v => "it's" };
        let out = render(
            "{{ t|ident }} {{ c|ident }} {{ v|literal }} {{ [c, c]|idents }}",
            ctx,
        );
        assert_eq!(
            out.map_err(|e| e.to_string()),
            Ok(r#""billing"."in""voices" "user" 'it''s' "user", "user""#.to_string())
        );
    }

    #[test]
    fn an_unquoted_string_is_refused() {
        let err = render("DROP TABLE {{ t }}", context! { t => "users" });
        assert!(err.is_err_and(|e| e.to_string().contains("unquoted")));
    }

    #[test]
    fn a_dollar_quote_tag_never_occurs_in_its_body() {
        let out = render(
            "DO {{ dollar_quote }} BEGIN PERFORM {{ v|literal }}; END {{ dollar_quote }};",
            context! { v => "$phasegate$ $phasegate_1$" },
        )
        .map(|s| choose_dollar_tags(&s));
        assert_eq!(
            out.map_err(|e| e.to_string()),
            Ok(
                "DO $phasegate_2$ BEGIN PERFORM '$phasegate$ $phasegate_1$'; END $phasegate_2$;"
                    .to_string()
            )
        );
        assert_eq!(choose_dollar_tags("no quote"), "no quote");
    }

    #[test]
    fn every_builtin_template_loads_for_every_dialect() {
        for d in Dialect::ALL {
            let t = Templates::builtin(d);
            assert!(t.env.templates().count() > 0);
        }
    }
}
