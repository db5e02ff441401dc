"""phasegate export: plan rename-users-name, deploy 1 of 2 (migration 3 of 6 of this deploy)
expand: add users.full_name, kept in step with users.name
Ships with the application change:
  - read full_name, write both
When the application code of deploy 1 is live, record it:
  phasegate mark --env <ENV> <PLAN FILE> --phase 1 --app-version <VERSION>
Undo the whole deploy with `alembic downgrade ae1027a6acf` (its rollback runs in
the downgrade() of its first revisions, from 20260101000000_01); undo deploys one at a time,
latest first.
Written by `phasegate export`; do not edit: each migration checks and records
its progress in the environment's phasegate log.

Revision ID: 20260101000000_03
Revises: 20260101000000_02
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "20260101000000_03"
down_revision: Union[str, Sequence[str], None] = "20260101000000_02"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _sql(statement: str) -> None:
    """Runs one statement as written: text() would read ":name" as a bind
    parameter, so every colon is escaped with a backslash (text() removes
    it); SQLAlchemy doubles "%" itself where the driver needs it."""
    op.execute(sa.text(statement.replace(":", "\\:")))


def upgrade() -> None:
    # add_column (in the migration's transaction); steps: 1.add_column
    # add_column (fixture)
    _sql("ALTER TABLE users ADD COLUMN full_name text;")
    _sql("INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE 0;")


def downgrade() -> None:
    # Deploy 1 is undone by the downgrade() of its first revisions (from 20260101000000_01),
    # which run after this one.
    pass
