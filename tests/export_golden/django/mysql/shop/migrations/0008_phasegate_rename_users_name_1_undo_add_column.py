# phasegate export: plan rename-users-name, deploy 1 of 2 (migration 1 of 6 of this deploy)
# expand: add users.full_name, kept in step with users.name
# Ships with the application change:
#   - read full_name, write both
# When the application code of deploy 1 is live, record it:
#   phasegate mark --env <ENV> <PLAN FILE> --phase 1 --app-version <VERSION>
# Undo the whole deploy with `python manage.py migrate shop 0007_order_total` (its rollback
# runs when Django unapplies the migrations before the deploy's guard); undo
# deploys one at a time, latest first.
# Written by `phasegate export`; do not edit: each migration checks and records
# its progress in the environment's phasegate log.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0007_order_total"),
    ]

    operations = [
        migrations.RunSQL(
            # Nothing to do forward: this migration holds (part of) the rollback of
            # deploy 1, which runs when Django unapplies it.
            sql=migrations.RunSQL.noop,
            reverse_sql=[
                # undo_add_column (in the migration's transaction); steps: 1.add_column
                # undo_add_column (fixture)
                "SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2;",
                "ALTER TABLE users DROP COLUMN full_name;",
                "INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' FROM DUAL WHERE false;",
            ],
        ),
    ]
