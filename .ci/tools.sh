# Sourced by .ci/test: installs, pinned, every external program the tests
# run (migration runners, squawk, jq and curl) and exports where each is.
# npm and pip packages go into .ci/tools (gitignored); Debian packages with
# apt-get. Re-running is fast: nothing already installed is installed again.
# A test whose program is missing prints `SKIPPED: …`, or fails under
# PHASEGATE_REQUIRE_DATABASES=1 (CI).

# Migration runners the runner tests use, pinned, into .ci/tools (gitignored).
# dbmate: the npm package ships the linux binary as an optional dependency
# (@dbmate/linux-x64), so npm alone installs it, no download from GitHub.
DBMATE_VERSION=2.36.0
if [ ! -x .ci/tools/dbmate/node_modules/.bin/dbmate ] ||
    ! .ci/tools/dbmate/node_modules/.bin/dbmate --version | grep -q "$DBMATE_VERSION"; then
    echo "== npm install dbmate@$DBMATE_VERSION into .ci/tools/dbmate"
    mkdir -p .ci/tools/dbmate
    npm install --prefix .ci/tools/dbmate --no-audit --no-fund --no-save "dbmate@$DBMATE_VERSION"
fi
PHASEGATE_DBMATE="$(pwd)/.ci/tools/dbmate/node_modules/.bin/dbmate"
export PHASEGATE_DBMATE
# Supabase CLI: the same way (@supabase/cli-linux-x64).
SUPABASE_VERSION=3.1.0
if [ ! -x .ci/tools/supabase/node_modules/.bin/supabase ] ||
    ! .ci/tools/supabase/node_modules/.bin/supabase --version | grep -q "$SUPABASE_VERSION"; then
    echo "== npm install supabase@$SUPABASE_VERSION into .ci/tools/supabase"
    mkdir -p .ci/tools/supabase
    npm install --prefix .ci/tools/supabase --no-audit --no-fund --no-save "supabase@$SUPABASE_VERSION"
fi
PHASEGATE_SUPABASE="$(pwd)/.ci/tools/supabase/node_modules/.bin/supabase"
export PHASEGATE_SUPABASE

echo "== squawk-cli 2.66.0 (npm, into .ci/tools) for tests/lint.rs and tests/sql_export.rs"
if [ "$(cat .ci/tools/squawk/.installed 2>/dev/null)" != 2.66.0 ]; then
    npm install --silent --no-audit --no-fund --prefix .ci/tools/squawk squawk-cli@2.66.0
    echo 2.66.0 > .ci/tools/squawk/.installed
fi
export PHASEGATE_SQUAWK="$PWD/.ci/tools/squawk/node_modules/.bin/squawk"
# The review script and its test (tests/review_action.rs) need jq and curl
# besides git, bash and python3.
if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
    echo "== apt-get install jq curl"
    apt-get update -qq && apt-get install -y -qq jq curl
fi

# The Python migration runners (sets PHASEGATE_PYTHON).
. .ci/python-tools.sh
# Liquibase and ActiveRecord for tests/runner_{liquibase,rails}.rs.
source .ci/jvm-rails-tools.sh

