# phasegate export: plan rename-users-name, deploy 1 of 2 (migration 4 of 6 of this deploy)
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
    # Its statement cannot run in a transaction: Django runs this migration
    # statement by statement, each committed on its own.
    atomic = False

    dependencies = [
        ("shop", "0010_phasegate_rename_users_name_1_add_column"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                # create_index (outside any transaction, alone); steps: 1.index
                # create_index (fixture)
                "SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2;",
                "CREATE INDEX `users_full_name_idx` ON `users` (`full_name`) ALGORITHM=INPLACE LOCK=NONE;",
            ],
            # Unapplying this migration does nothing: deploy 1's rollback runs in
            # 0008_phasegate_rename_users_name_1_undo_add_column (and the migrations beside it), unapplied after this one.
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
