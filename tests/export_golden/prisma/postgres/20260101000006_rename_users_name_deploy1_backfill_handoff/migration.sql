-- phasegate export --to prisma: plan rename-users-name, deploy 1 of 2 (backfill_handoff).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Undo deploy 1 with phasegate rollback --env <ENV> rename-users-name --phase 1, then prisma migrate resolve --rolled-back for each of its folders (Prisma has no down migrations).

-- backfill_handoff (fixture)
SELECT 1 FROM phasegate_head WHERE id = 1;
