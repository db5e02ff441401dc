SET lock_timeout = '3s';

-- phasegate: accept drop-table import_staging has had no reader since release 41 (see PR #812)
DROP TABLE import_staging;
