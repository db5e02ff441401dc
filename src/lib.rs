//! phasegate plans and drives expand–contract schema changes across deploys
//! and environments.
//!
//! The crate is laid out the way the product works:
//! - [`intent`]: the changes a plan file declares, and reading plan files;
//! - [`plan`]: expanding intents into steps in a dependency graph, and the
//!   phases (deploys) derived from it, with one recipe per intent kind;
//! - [`dialect`]: what each database can do, its quoting, and its SQL templates;
//! - [`catalog`]: what is known of a live schema;
//! - [`db_error`]: a database's errors with DETAIL, HINT and the object kept;
//! - [`session_bounds`]: what each session asks of the server so a dead client's locks are freed;
//! - [`output`]: rendering a plan as text, JSON, Markdown, Mermaid, DOT or SQL.
//! - [`lint`]: reading existing SQL migration files: unsafe statements, and converting them into plans.
//!
//! The library never prints; the `phasegate` binary does.

pub mod catalog;
pub mod config;
pub mod db_error;
pub mod dialect;
pub mod execute;
pub mod export;
pub mod intent;
pub mod lint;
pub mod name;
pub mod output;
pub mod plan;
pub mod session_bounds;
pub mod suggest;
pub mod tracker;
