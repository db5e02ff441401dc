"""phasegate export: plan rename-users-name, deploy 2 of 2 (migration 2 of 2 of this deploy)
contract: drop users.name
Ships with the application change:
  - stop writing name
When the application code of deploy 2 is live, record it:
  phasegate mark --env <ENV> <PLAN FILE> --phase 2 --app-version <VERSION>
Deploy 2 cannot be undone: its downgrade() refuses. phasegate writes it only
when asked for with `phasegate export --phase 2`.
Written by `phasegate export`; do not edit: each migration checks and records
its progress in the environment's phasegate log.

Revision ID: 20260101000000_08
Revises: 20260101000000_07
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "20260101000000_08"
down_revision: Union[str, Sequence[str], None] = "20260101000000_07"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _sql(statement: str) -> None:
    """Runs one statement as written: text() would read ":name" as a bind
    parameter, so every colon is escaped with a backslash (text() removes
    it); SQLAlchemy doubles "%" itself where the driver needs it."""
    op.execute(sa.text(statement.replace(":", "\\:")))


def upgrade() -> None:
    # drop_column (in the migration's transaction); steps: 2.drop_column
    # drop_column (fixture)
    _sql("ALTER TABLE users DROP COLUMN name;")
    _sql("INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE 0;")


def downgrade() -> None:
    raise RuntimeError(
        "phasegate: deploy 2 of plan rename-users-name is irreversible and cannot be downgraded"
    )
