# phasegate export: plan rename-users-name, deploy 2 of 2 (migration 1 of 2 of this deploy)
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
        ("shop", "0013_phasegate_rename_users_name_1_backfill_handoff"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                # guard (in the migration's transaction)
                # guard (fixture)
                "SELECT 1 FROM phasegate_head WHERE id = 1;",
            ],
        ),
    ]
