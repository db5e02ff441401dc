{#- rename_table. Not planned on SQLite: the recipe refuses it before
    rendering. During the rollout one of the two names would be a view, and
    SQLite views are read-only; a write through INSTEAD OF triggers reports
    0 rows changed (changes()), leaves last_insert_rowid() unchanged and
    returns NULL for a generated id in RETURNING, so an ORM takes every save
    as failed. See docs/intents.md (rename_table). -#}
