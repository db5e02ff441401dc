#!/usr/bin/env bash
# Backticks in single quotes are Markdown here, not command substitutions:
# shellcheck disable=SC2016
#
# The pull-request review: for the plan files and SQL migrations a pull
# request changes, one comment on the pull request with, per changed plan,
# the gates each environment checks, the sizes of the tables it touches and
# each backfill's estimated duration (when a database URL is given), and the
# runbook; and `phasegate lint` of the changed migrations. The comment is
# found again by its hidden marker and updated, so a pull request has one.
# See docs/review.md.
#
# Usage:
#   ci/phasegate-review.sh [options]
#
# Options:
#   --base REF             the pull request's base (default: origin/$GITHUB_BASE_REF)
#   --head REF             the pull request's head (default: HEAD)
#   --config FILE          phasegate's config file (default: phasegate.yaml)
#   --plans-dir DIR        where plan files live (default: plans)
#   --migrations GLOB      which changed files are SQL migrations, a bash
#                          pattern (`*` also matches `/`; default: *.sql)
#   --database-url URL     read table sizes from this database (default:
#                          $PHASEGATE_REVIEW_DATABASE_URL; none: no sizes)
#   --rows-per-second N    the backfill rate of the estimates (default:
#                          phasegate's, from its backfill benchmark)
#   --pr N                 the pull request's number (default: from
#                          $GITHUB_EVENT_PATH)
#   --dry-run              write the comment to stdout, call no API
#
# PHASEGATE_REVIEW_OUTPUT=FILE writes the comment to FILE and calls no API.
# Otherwise the comment is posted with the REST API at $GITHUB_API_URL
# (default https://api.github.com) to $GITHUB_REPOSITORY's pull request,
# authenticated with $GITHUB_TOKEN: the comment holding the marker
# <!-- phasegate-review --> is updated (PATCH), else one is created (POST).
# $PHASEGATE names the binary (default: phasegate on PATH). Needs git, jq
# and curl. Plan files are rendered from the working tree (the head, as
# checked out).
#
# Exit status: 0 the comment was written or posted (whatever lint found);
# 2 bad usage, a git or API failure.

set -uo pipefail

PHASEGATE=${PHASEGATE:-phasegate}
MARKER='<!-- phasegate-review -->'
# GitHub refuses a comment body over 65,536 characters.
MAX_BODY=65000

base=
head=HEAD
config=phasegate.yaml
plans_dir=plans
migrations='*.sql'
database_url=${PHASEGATE_REVIEW_DATABASE_URL:-}
rate=()
pr=
dry_run=false

die() {
    echo "error: $*" >&2
    exit 2
}

usage() {
    sed -n '5,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --base) [ $# -ge 2 ] || usage; base=$2; shift 2 ;;
        --head) [ $# -ge 2 ] || usage; head=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
        --plans-dir) [ $# -ge 2 ] || usage; plans_dir=${2%/}; shift 2 ;;
        --migrations) [ $# -ge 2 ] || usage; migrations=$2; shift 2 ;;
        --database-url) [ $# -ge 2 ] || usage; database_url=$2; shift 2 ;;
        --rows-per-second) [ $# -ge 2 ] || usage; rate=(--rows-per-second "$2"); shift 2 ;;
        --pr) [ $# -ge 2 ] || usage; pr=$2; shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        -h|--help) usage ;;
        *) echo "error: unknown argument $1" >&2; usage ;;
    esac
done

if [ -z "$base" ]; then
    [ -n "${GITHUB_BASE_REF:-}" ] || die "no --base, and GITHUB_BASE_REF is not set (is this a pull_request event?)"
    base=origin/$GITHUB_BASE_REF
fi
git rev-parse --verify --quiet "$base^{commit}" >/dev/null ||
    die "base $base is not a commit here (check out with fetch-depth: 0, or fetch the base branch)"
git rev-parse --verify --quiet "$head^{commit}" >/dev/null || die "head $head is not a commit here"

# Added, copied, modified and renamed files (not deleted ones), NUL-separated.
changed=()
while IFS= read -r -d '' f; do
    changed+=("$f")
done < <(git diff -z --name-only --diff-filter=ACMR "$base...$head" --) ||
    die "git diff $base...$head failed"

plans=()
sqls=()
for f in "${changed[@]}"; do
    case "$f" in
        "$plans_dir"/*.yaml | "$plans_dir"/*.yml) plans+=("$f") ;;
    esac
    # shellcheck disable=SC2053 # $migrations is a pattern on purpose
    if [[ $f == $migrations ]]; then sqls+=("$f"); fi
done

config_args=()
if [ -f "$config" ]; then config_args=(--config "$config"); fi

body=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$body" "$work"' EXIT

# Quotes `text` in a fence longer than any backtick run inside it.
fenced() {
    local lang=$1 file=$2 fence='```'
    while grep -q "$fence" "$file"; do fence="$fence\`"; done
    printf '%s%s\n' "$fence" "$lang"
    cat "$file"
    [ -z "$(tail -c1 "$file")" ] || echo
    printf '%s\n' "$fence"
}

# The runbook's gates: its environments table and each deploy's gate list
# (the lines of `phasegate plan --format markdown` between a deploy's
# **Gates** line and the next paragraph).
gates_of() {
    awk '
        /^\| environment \|/ { table = 1 }
        table && /^\|/ { print; next }
        table { table = 0; print "" }
        /^## Deploy / { deploy = substr($0, 4); next }
        /^\*\*Gates\*\*/ { gates = 1; print "**" deploy "**"; print ""; next }
        gates && /^- \[ \] \*\*/ { sub(/^- \[ \] /, "- "); print; next }
        gates && /^- / { sub(/^- \[ \] /, "- every environment: "); print; next }
        gates && /^\*\*/ { gates = 0; print "" }
    ' "$1"
}

# GitHub workflow commands (`::error file=F,line=L,col=C,title=T::message`,
# values %-escaped) as a Markdown list: `- **error** `F:L:C` T: message`.
annotations_list() {
    awk '
        function unescape(v) {
            gsub(/%0[AaDd]/, " ", v); gsub(/%3[Aa]/, ":", v); gsub(/%2[Cc]/, ",", v)
            gsub(/%25/, "%", v)
            return v
        }
        /^::(error|warning|notice)( |::)/ {
            rest = substr($0, 3)
            cut = index(rest, "::")
            head = substr(rest, 1, cut - 1); msg = substr(rest, cut + 2)
            level = head; sub(/ .*/, "", level)
            props = (index(head, " ") ? substr(head, index(head, " ") + 1) : "")
            file = ""; line = ""; col = ""; title = ""
            n = split(props, kv, ",")
            for (k = 1; k <= n; k++) {
                eq = index(kv[k], "=")
                key = substr(kv[k], 1, eq - 1); val = unescape(substr(kv[k], eq + 1))
                if (key == "file") file = val
                else if (key == "line") line = val
                else if (key == "col") col = val
                else if (key == "title") title = val
            }
            where = file (line != "" ? ":" line : "") (col != "" ? ":" col : "")
            printf "- **%s**%s%s: %s\n", level, (where != "" ? " `" where "`" : ""), (title != "" ? " " title : ""), unescape(msg)
        }
    ' "$1"
}

# One section per changed plan; $1: with the runbook (true/false).
render() {
    local with_runbook=$1
    {
        echo "$MARKER"
        echo "## phasegate review"
        echo
        echo "Changes from \`$(git rev-parse --short "$base")\` to \`$(git rev-parse --short "$head")\`: ${#plans[@]} plan file(s), ${#sqls[@]} SQL migration(s)."
        echo
        for p in "${plans[@]}"; do
            echo "### Plan \`$p\`"
            echo
            local runbook=$work/runbook.md err=$work/err
            if ! "$PHASEGATE" "${config_args[@]}" plan --format markdown "$p" >"$runbook" 2>"$err"; then
                echo "**phasegate cannot plan it:**"
                echo
                fenced text "$err"
                echo
                continue
            fi
            echo "#### Gates each environment checks"
            echo
            gates_of "$runbook"
            echo
            echo "#### Table sizes and backfill estimates"
            echo
            if [ -z "$database_url" ]; then
                echo "No database URL given (the action's \`database-url\` input), so no table sizes and no backfill estimates."
            elif "$PHASEGATE" "${config_args[@]}" estimate "$p" --database-url "$database_url" "${rate[@]}" >"$work/estimate.md" 2>"$err"; then
                cat "$work/estimate.md"
            else
                echo "**The sizes could not be read:**"
                echo
                fenced text "$err"
            fi
            echo
            if [ "$with_runbook" = true ]; then
                echo "<details><summary>Runbook: every deploy, its SQL and its checklist</summary>"
                echo
                cat "$runbook"
                echo
                echo "</details>"
            else
                echo "The runbook is left out: the comment would be longer than GitHub takes. Run \`phasegate plan --format markdown $p\`."
            fi
            echo
        done
        echo "### Migrations: \`phasegate lint\`"
        echo
        if [ ${#sqls[@]} -eq 0 ]; then
            echo "No SQL migration changed (files matching \`$migrations\`)."
        elif ! "$PHASEGATE" lint --help >/dev/null 2>&1; then
            echo "\`phasegate lint\` is not available in this phasegate ($("$PHASEGATE" --version 2>/dev/null || echo "version unknown")), so these changed migrations were not linted: $(printf '`%s` ' "${sqls[@]}")"
        else
            local status=0
            "$PHASEGATE" lint --format github "${sqls[@]}" >"$work/lint" 2>"$work/lint-err" || status=$?
            local findings
            findings=$(grep -c '^::' "$work/lint" || true)
            if [ "$status" -eq 0 ] && [ "$findings" -eq 0 ]; then
                echo "No finding in $(printf '`%s` ' "${sqls[@]}")"
            else
                echo "$findings finding(s) (exit $status) in $(printf '`%s` ' "${sqls[@]}")"
                echo
                annotations_list "$work/lint"
                echo
                echo "<details><summary>phasegate lint's output</summary>"
                echo
                cat "$work/lint" "$work/lint-err" >"$work/lint-all"
                fenced text "$work/lint-all"
                echo
                echo "</details>"
            fi
        fi
    } >"$body"
}

render true
if [ "$(wc -c <"$body")" -gt "$MAX_BODY" ]; then render false; fi
if [ "$(wc -c <"$body")" -gt "$MAX_BODY" ]; then
    head -c "$((MAX_BODY - 300))" "$body" >"$work/cut"
    printf '\n\n**Cut here**: the review is longer than a GitHub comment takes; `ci/phasegate-review.sh --dry-run` prints all of it.\n' >>"$work/cut"
    mv "$work/cut" "$body"
fi

# The lint annotations, in the job's log too (GitHub shows them on the diff).
if [ -s "$work/lint" ] 2>/dev/null; then cat "$work/lint"; fi

if [ -n "${PHASEGATE_REVIEW_OUTPUT:-}" ]; then
    cp "$body" "$PHASEGATE_REVIEW_OUTPUT" || die "cannot write $PHASEGATE_REVIEW_OUTPUT"
    echo "phasegate-review: comment written to $PHASEGATE_REVIEW_OUTPUT (no API call)"
    exit 0
fi
if [ "$dry_run" = true ]; then
    cat "$body"
    exit 0
fi

# ---- posting: one comment, found by its marker --------------------------
api=${GITHUB_API_URL:-https://api.github.com}
api=${api%/}
[ -n "${GITHUB_TOKEN:-}" ] || die "GITHUB_TOKEN is not set (pass the workflow's token, or use --dry-run)"
[ -n "${GITHUB_REPOSITORY:-}" ] || die "GITHUB_REPOSITORY (owner/name) is not set"
if [ -z "$pr" ] && [ -n "${GITHUB_EVENT_PATH:-}" ] && [ -f "$GITHUB_EVENT_PATH" ]; then
    pr=$(jq -r '.pull_request.number // .number // empty' "$GITHUB_EVENT_PATH")
fi
[[ "$pr" =~ ^[0-9]+$ ]] || die "no pull request number (--pr N, or a pull_request event in GITHUB_EVENT_PATH)"

# call METHOD URL [JSON_FILE]: the response body in $work/response; fails
# the run on a status outside 2xx.
call() {
    local method=$1 url=$2 data=${3:-} code
    local args=(-sS -X "$method" -o "$work/response" -w '%{http_code}'
        -H "Authorization: Bearer $GITHUB_TOKEN"
        -H "Accept: application/vnd.github+json"
        -H "X-GitHub-Api-Version: 2022-11-28")
    if [ -n "$data" ]; then args+=(-H "Content-Type: application/json" --data-binary "@$data"); fi
    code=$(curl "${args[@]}" "$url") || die "$method $url: curl failed"
    case "$code" in
        2??) ;;
        *) die "$method $url: HTTP $code: $(head -c 500 "$work/response")" ;;
    esac
}

existing=
page=1
while [ -z "$existing" ] && [ "$page" -le 100 ]; do
    call GET "$api/repos/$GITHUB_REPOSITORY/issues/$pr/comments?per_page=100&page=$page"
    count=$(jq 'length' "$work/response") || die "listing comments: not JSON"
    existing=$(jq -r --arg m "$MARKER" '[.[] | select(.body | contains($m))][0].id // empty' "$work/response")
    [ "$count" -eq 100 ] || break
    page=$((page + 1))
done

jq -n --rawfile body "$body" '{body: $body}' >"$work/payload.json" || die "building the request"
if [ -n "$existing" ]; then
    call PATCH "$api/repos/$GITHUB_REPOSITORY/issues/comments/$existing" "$work/payload.json"
    echo "phasegate-review: updated comment $existing on #$pr"
else
    call POST "$api/repos/$GITHUB_REPOSITORY/issues/$pr/comments" "$work/payload.json"
    echo "phasegate-review: created comment $(jq -r '.id' "$work/response") on #$pr"
fi
