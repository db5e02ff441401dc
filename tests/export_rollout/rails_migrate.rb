# Runs a folder of Rails migrations with ActiveRecord's own migrator, as
# `bin/rails db:migrate` would, without a Rails app (tests/runner_rails.rs).
#
#   ruby rails_migrate.rb URL DIR step       # the next pending migration
#   ruby rails_migrate.rb URL DIR rollback N # the newest N, newest first
#
# Exit 0: done; 3: nothing pending; 1: a migration failed (its error on stderr).
require "active_record"

# Debian bookworm ships ActiveRecord 6.1, which does not know
# Migration[7.1]; what the exported files use (execute,
# disable_ddl_transaction!, up/down, transaction) behaves the same.
compat = ActiveRecord::Migration::Compatibility
compat.const_set(:V7_1, ActiveRecord::Migration::Current) unless compat.const_defined?(:V7_1)

url, dir, action, count = ARGV
ActiveRecord::Base.establish_connection(url)
context = ActiveRecord::MigrationContext.new(dir, ActiveRecord::SchemaMigration)
begin
  case action
  when "step"
    pending = context.open.pending_migrations
    exit 3 if pending.empty?
    context.run(:up, pending.first.version)
  when "rollback"
    context.rollback(Integer(count))
  else
    abort "unknown action #{action.inspect}"
  end
rescue StandardError => e
  warn "#{e.class}: #{e.message}"
  exit 1
end
