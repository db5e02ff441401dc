# Sourced by .ci/run: installs the runners tests/runner_liquibase.rs and
# tests/runner_rails.rs run, and exports where they are:
# - Liquibase 4.28 from the npm package `liquibase` (it ships Liquibase
#   itself and its JDBC drivers; Maven Central is not reachable here) into
#   .ci/tools/liquibase (gitignored), run by Debian's Java 17; its SQLite
#   driver needs slf4j-api, which the package lacks: Debian's is copied in.
#   PHASEGATE_LIQUIBASE is its launcher.
# - ActiveRecord from Debian (bookworm has 6.1) with the pg, sqlite3 and
#   mysql2 drivers. PHASEGATE_RAILS_RUBY is the ruby that loads it.
# Flyway is not installed: no registry package here ships it (the npm and
# PyPI wrappers download it from Maven Central or Redgate at install or
# run time); its exports are tested against golden files only.
# Re-running is fast: nothing is installed that already is.

jvm_apt_pinned="ruby=1:3.1 ruby-activerecord=2:6.1.7.10+dfsg-1~deb12u4 ruby-pg=1.4.5-1+b1 ruby-sqlite3=1.4.2-4+b3 ruby-mysql2=0.5.3-4+b1 libslf4j-java=1.7.32-1 openjdk-17-jre-headless"
jvm_apt_missing=""
for p in $jvm_apt_pinned; do
    name="${p%%=*}"
    if ! dpkg-query -W -f='${db:Status-Abbrev}' "$name" 2>/dev/null | grep -q '^ii'; then
        jvm_apt_missing="$jvm_apt_missing $p"
    fi
done
if [ -n "$jvm_apt_missing" ]; then
    echo "== apt-get install$jvm_apt_missing"
    apt-get update -qq
    # A pinned version the archive no longer has (a security update replaced
    # it) falls back to the archive's own, loudly.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $jvm_apt_missing; then
        echo "WARNING: pinned versions unavailable; installing the archive's current ones"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $(for p in $jvm_apt_missing; do echo "${p%%=*}"; done)
    fi
fi

jvm_lb_version=4.28.1
jvm_lb_dir=.ci/tools/liquibase
jvm_lb_home="$jvm_lb_dir/node_modules/liquibase/dist/liquibase"
if [ "$(cat "$jvm_lb_dir/.installed" 2>/dev/null)" != "$jvm_lb_version" ]; then
    echo "== npm install liquibase@$jvm_lb_version"
    mkdir -p "$jvm_lb_dir"
    npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$jvm_lb_dir" "liquibase@$jvm_lb_version"
    cp /usr/share/java/slf4j-api.jar /usr/share/java/slf4j-nop.jar "$jvm_lb_home/lib/"
    echo "$jvm_lb_version" > "$jvm_lb_dir/.installed"
fi
export PHASEGATE_LIQUIBASE="$PWD/$jvm_lb_home/liquibase"
export PHASEGATE_RAILS_RUBY="$(command -v ruby)"
