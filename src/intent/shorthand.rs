//! Plans from the command line (`phasegate plan rename users.name full_name`).
//! A shorthand builds the same intent a plan file would, and a plan name
//! that says what it does.

use super::{Intent, PlanFile};

impl PlanFile {
    /// A one-intent plan named after what it does (`rename-users-name-to-full-name`).
    pub fn from_intent(intent: Intent) -> PlanFile {
        PlanFile {
            name: slug(&intent),
            description: None,
            changes: vec![intent],
            path: None,
            source: None,
        }
    }

    /// The plan as YAML, in the plan-file format (`- rename_column: {…}`).
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        serde_saphyr::to_string(self)
    }
}

fn slug(intent: &Intent) -> String {
    let text = match intent {
        Intent::RenameColumn(i) => format!("rename {} {} to {}", i.table, i.from, i.to),
        Intent::AddColumn(i) => format!("add {} {}", i.table, i.column),
        Intent::ChangeColumnType(i) => format!("retype {} {}", i.table, i.column),
        Intent::DropColumn(i) => format!("drop {} {}", i.table, i.column),
        Intent::RenameTable(i) => format!("rename table {} to {}", i.from, i.to.name),
        Intent::AddIndex(i) => format!("index {} {}", i.table, super::join(&i.columns)),
        Intent::AddForeignKey(i) => format!("fk {} {}", i.table, super::join(&i.columns)),
        Intent::SetNotNull(i) => format!("require {} {}", i.table, i.column),
        Intent::AddCheck(i) => format!("check {} {}", i.table, i.name),
        Intent::DropTable(i) => format!("drop table {}", i.table),
        Intent::Sql(_) => "sql".to_string(),
    };
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "plan".to_string()
    } else {
        out.chars().take(100).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{RenameColumn, RenameStrategy, SyncMode, parse_plan};
    use crate::name::{Ident, TableName};

    #[test]
    fn shorthand_round_trips_through_the_plan_format() -> Result<(), Box<dyn std::error::Error>> {
        let intent = Intent::RenameColumn(RenameColumn {
            table: TableName::parse("users")?,
            from: Ident::new("name")?,
            to: Ident::new("full_name")?,
            sync: SyncMode::Trigger,
            strategy: RenameStrategy::Copy,
        });
        let plan = PlanFile::from_intent(intent);
        assert_eq!(plan.name, "rename-users-name-to-full-name");
        let yaml = plan.to_yaml()?;
        assert!(yaml.contains("- rename_column:"), "{yaml}");
        let back = parse_plan(&yaml, "x", "x")?;
        assert_eq!(back.changes, plan.changes);
        Ok(())
    }
}
