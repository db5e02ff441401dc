# phasegate export: plan rename-users-name, deploy 2 of 2 (migration 2 of 2 of this deploy)
# contract: drop users.name
# Ships with the application change:
#   - stop writing name
# When the application code of deploy 2 is live, record it:
#   phasegate mark --env <ENV> <PLAN FILE> --phase 2 --app-version <VERSION>
# Deploy 2 cannot be undone: Django refuses to unapply it. phasegate writes it
# only when asked for with `phasegate export --phase 2`.
# Written by `phasegate export`; do not edit: each migration checks and records
# its progress in the environment's phasegate log.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0014_phasegate_rename_users_name_2_guard"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                # drop_column (in the migration's transaction); steps: 2.drop_column
                # drop_column (fixture)
                "SET lock_timeout = '2000ms';",
                "ALTER TABLE users DROP COLUMN name;",
                "INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE false;",
            ],
        ),
    ]
