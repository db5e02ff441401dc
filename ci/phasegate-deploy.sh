#!/usr/bin/env bash
# One pipeline run of one plan in one environment:
#   gate -> apply -> the deploy command (when the phase ships app code) -> mark.
#
# Usage:
#   ci/phasegate-deploy.sh [options] ENV PLAN -- DEPLOY_COMMAND [ARG...]
#
# Options:
#   --app-version V   recorded by `phasegate mark` (default: $GITHUB_SHA)
#   --config FILE     phasegate's config file (default: phasegate.yaml)
#   --blocked-ok      a blocking gate ends the run with success (default: failure)
#   --backup          when the backup gate (and no other) blocks, take a backup
#                     with `phasegate backup` (ENV's backup_command) and gate
#                     again; no backup is taken when no gate needs one
#
# The deploy command runs with PHASEGATE_ENV, PHASEGATE_PLAN, PHASEGATE_PHASE
# and PHASEGATE_APP_VERSION set. $PHASEGATE names the binary (default:
# phasegate on PATH). Needs jq.
#
# Exit status, after phasegate's own (docs/workflow.md, "Exit codes"):
#   0  the phase ran (and was deployed and marked), or the plan is complete
#      in ENV (nothing to do), or a gate blocks and --blocked-ok was given
#   1  a gate blocks: the reasons are printed; nothing changed
#   2  error: bad usage or config, unreachable database, a failed step, or a
#      deploy command that failed (the phase stays migrated; the next run
#      deploys and marks it, as phasegate then exits 3: waiting for deploy)
#
# When $GITHUB_OUTPUT is set, writes outcome=, phase= and deployed= to it.

set -uo pipefail

PHASEGATE=${PHASEGATE:-phasegate}
app_version=${GITHUB_SHA:-}
blocked_ok=false
backup=false
config=()

usage() {
    echo "usage: $0 [--app-version V] [--config FILE] [--blocked-ok] [--backup] ENV PLAN -- DEPLOY_COMMAND [ARG...]" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --app-version) [ $# -ge 2 ] || usage; app_version=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || usage; config=(--config "$2"); shift 2 ;;
        --blocked-ok) blocked_ok=true; shift ;;
        --backup) backup=true; shift ;;
        --) break ;;
        -*) echo "error: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || usage
env_name=$1
plan=$2
shift 2
[ "${1:-}" = "--" ] || usage
shift
[ $# -ge 1 ] || { echo "error: no deploy command after --" >&2; usage; }
deploy=("$@")

command -v jq >/dev/null || { echo "error: jq is needed (it is on GitHub's runners)" >&2; exit 2; }
command -v "$PHASEGATE" >/dev/null || { echo "error: $PHASEGATE not found: install phasegate first" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT

say() { echo "phasegate-deploy: $*" >&2; }

output() {
    if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$1=$2" >> "$GITHUB_OUTPUT"; fi
}

# Runs phasegate with --format json; its JSON lands in $out, its exit status in $rc.
pg() {
    "$PHASEGATE" ${config[@]+"${config[@]}"} "$@" --env "$env_name" "$plan" --format json > "$out"
    rc=$?
}

# A field of the last JSON document, or empty.
field() { jq -r "$1 // empty" "$out" 2>/dev/null; }

# gate says the plan is complete here: nothing to do.
gate_says_complete() {
    [ "$(field .outcome)" = "nothing_to_do" ] || [ "$(field .next.action)" = "complete" ]
}

# apply did nothing: the plan was complete already. (An apply that ran the
# last phase is `done`, with next.action `complete`.)
apply_did_nothing() {
    [ "$(field .outcome)" = "nothing_to_do" ]
}

complete() {
    say "$plan is complete in $env_name: nothing to do"
    output outcome nothing_to_do
    exit 0
}

blocked() {
    say "$plan is blocked in $env_name; nothing changed:"
    jq -r '.gates[]? | select(.held == false) | "  blocked by \(.name): \(.reason)"' "$out" >&2 2>/dev/null
    output outcome blocked
    if $blocked_ok; then
        say "--blocked-ok: the run passes; a later run tries again"
        exit 0
    fi
    exit 1
}

error() {
    local message
    message=$(field .error.message)
    say "error ($1): ${message:-see the message above}"
    output outcome error
    exit 2
}

# Deploys the app code of phase $1, then records it with mark.
deploy_and_mark() {
    local phase=$1
    say "deploying the app code of phase $phase in $env_name: ${deploy[*]}"
    if ! PHASEGATE_ENV=$env_name PHASEGATE_PLAN=$plan PHASEGATE_PHASE=$phase \
        PHASEGATE_APP_VERSION=$app_version "${deploy[@]}"; then
        say "the deploy command failed: phase $phase stays migrated in $env_name;" \
            "the next run deploys and marks it"
        output outcome error
        exit 2
    fi
    if [ -z "$app_version" ]; then
        say "error: no app version to record: give --app-version (or set GITHUB_SHA)"
        exit 2
    fi
    # mark's text (one line) goes to the log; its exit status is what counts.
    "$PHASEGATE" ${config[@]+"${config[@]}"} mark --env "$env_name" "$plan" --phase "$phase" \
        --app-version "$app_version" >&2
    rc=$?
    [ "$rc" -eq 0 ] || error "mark exited $rc"
    say "phase $phase of $plan is deployed in $env_name (app $app_version)"
    output outcome "done"
    output deployed true
    exit 0
}

# The phase waiting for its app deploy: gate's next step, or apply's phase.
waiting_phase() {
    if [ "$(field .next.action)" = "deploy" ]; then field .next.phase; else field .phase; fi
}

# The names of the gates that block, one a line.
blocking_gates() { jq -r '.gates[]? | select(.held == false) | .name' "$out" 2>/dev/null; }

# With --backup, when the backup gate alone blocks: take a backup, gate again.
backup_if_needed() {
    $backup && [ "$rc" -eq 1 ] && [ "$(blocking_gates)" = "backup" ] || return 0
    say "the backup gate needs a backup in $env_name: taking one (phasegate backup)"
    "$PHASEGATE" ${config[@]+"${config[@]}"} backup --env "$env_name" >&2
    local brc=$?
    if [ "$brc" -ne 0 ]; then
        say "error: the backup gate of $plan in $env_name needs a backup and none could be" \
            "taken (phasegate backup exited $brc): set backup_command for $env_name in" \
            "${config[1]:-phasegate.yaml}, or record one taken otherwise with" \
            "\`phasegate backup --env $env_name --location WHERE\`"
        output outcome error
        exit 2
    fi
    pg gate
}

# 1. May the next step run?
pg gate
backup_if_needed
case $rc in
    0) gate_says_complete && complete ;;
    1) blocked ;;
    3) phase=$(waiting_phase)
       say "phase $phase is migrated in $env_name and waits for its app deploy"
       output phase "$phase"
       deploy_and_mark "$phase" ;;
    *) error "gate exited $rc" ;;
esac

# 2. Run the next phase's migrations.
pg apply
case $rc in
    0) apply_did_nothing && complete ;;
    1) blocked ;;
    3) deploy_and_mark "$(waiting_phase)" ;;
    *) error "apply exited $rc" ;;
esac
phase=$(field .phase)
output phase "$phase"
ran=$(jq -r '.ran // [] | join(", ")' "$out")
say "applied phase $phase of $plan in $env_name (ran: ${ran:-no migration steps})"

# 3. Ship its app code, if it has any, and record that.
if [ "$(field .deployed)" = "true" ]; then
    say "phase $phase has no app code to ship: it is deployed"
    output outcome "done"
    output deployed true
    exit 0
fi
jq -r '.app[]? | "  app change: \(.)"' "$out" >&2
deploy_and_mark "$phase"
