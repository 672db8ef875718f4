#!/usr/bin/env bash
# Proves that the contract guard bites: `buf breaking` with the repository's buf.yaml, against
# proto-released/ (as `make contract-check` runs it), fails for edits that break consumers and
# passes for additions. Each case edits a copy of the released proto in a temporary directory.
#
#   BUF=target/tools/bin/buf bash tests/contract/buf_breaking_bites.sh
set -euo pipefail

: "${BUF:?set BUF to the buf binary (eval \"\$(bash scripts/dev-env.sh tools)\")}"
# Each case runs buf in its own directory: a relative BUF must still point at buf.
if [[ $BUF == */* && $BUF != /* ]]; then BUF=$PWD/$BUF; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
readonly ROOT FILE=newsroom/content/v1/article_service.proto
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

passed=0 failed=0

# expect NAME pass|break SED_SCRIPT [TEXT]: applies SED_SCRIPT to a copy of the released proto
# and checks buf's verdict; for a break, buf's report must also contain TEXT.
expect() {
    local name=$1 want=$2 edit=$3 text=${4:-} dir="$TMP/$1" got report
    mkdir -p "$dir/proto/$(dirname "$FILE")"
    cp "$ROOT/buf.yaml" "$dir/"
    sed -E "$edit" "$ROOT/proto-released/$FILE" >"$dir/proto/$FILE"
    if [[ -n $edit ]] && cmp -s "$ROOT/proto-released/$FILE" "$dir/proto/$FILE"; then
        echo "FAIL $name: the edit changed nothing (the released proto no longer has what it edits)"
        failed=$((failed + 1))
        return
    fi
    if report=$(cd "$dir" && "$BUF" breaking --against "$ROOT/proto-released" 2>&1); then
        got=pass
    else
        got=break
    fi
    if [[ $got != "$want" ]]; then
        echo "FAIL $name: buf breaking said $got, expected $want"
        printf '%s\n' "$report" | sed 's/^/    /'
        failed=$((failed + 1))
    elif [[ $got == break && -n $text && $report != *"$text"* ]]; then
        echo "FAIL $name: buf breaking failed, but its report does not mention $text"
        printf '%s\n' "$report" | sed 's/^/    /'
        failed=$((failed + 1))
    else
        echo "ok   $name: $got"
        passed=$((passed + 1))
    fi
}

in_article='/^message Article \{/,/^\}/'
expect unchanged pass ''
expect rename_field break "$in_article s/string title = 3;/string headline = 3;/" '"title"'
expect renumber_field break "$in_article s/string title = 3;/string title = 30;/" '"3"'
expect retype_field break "$in_article s/int64 revision = 10;/int32 revision = 10;/" '"revision"'
expect remove_field break "$in_article { /string byline = 6;/d }" '"6"'
expect rename_enum_value break 's/ARTICLE_STATE_WITHDRAWN = 3;/ARTICLE_STATE_TAKEN_DOWN = 3;/' 'ARTICLE_STATE_WITHDRAWN'
expect remove_rpc break '/^  rpc ListTags\(/,/;$/d' '"ListTags"'
expect add_field pass "$in_article s/(ArticleState state = 11;)/\\1\\n  string subtitle = 12;/"
expect add_enum_value pass 's/(ARTICLE_STATE_WITHDRAWN = 3;)/\1\n  ARTICLE_STATE_ARCHIVED = 4;/'

echo "$passed passed, $failed failed"
(( failed == 0 ))
