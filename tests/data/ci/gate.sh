#!/usr/bin/env bash
# Run `edgeplan check` exactly as a CI job does: in a fresh folder holding an edgeplan.yaml,
# with no arguments but --junit, and judge it by its exit status alone.
#
#   bash tests/data/ci/gate.sh
#
# EDGEPLAN: the command to run (default: `edgeplan` on PATH); EDGEPLAN_PYTHON: run
# `$EDGEPLAN_PYTHON -m edgeplan` instead. Exits 0 when every exit status was as expected.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/edgeplan-ci.XXXXXX")
trap 'rm -rf "$work"' EXIT

edgeplan() {
    if [ -n "${EDGEPLAN_PYTHON:-}" ]; then
        "$EDGEPLAN_PYTHON" -m edgeplan "$@"
    else
        command "${EDGEPLAN:-edgeplan}" "$@"
    fi
}

cp "$here/model.yaml" "$here/device.yaml" "$work/"
cd "$work" || exit 1
failures=0

# expect CONFIG STATUS: copy CONFIG to ./edgeplan.yaml, run the gate, compare $? with STATUS.
expect() {
    local config=$1 want=$2
    cp "$here/$config" edgeplan.yaml
    rm -f gates.xml
    edgeplan check --junit gates.xml > "stdout-$config.txt" 2> "stderr-$config.txt"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL $config: exit $got, expected $want"
        cat "stdout-$config.txt" "stderr-$config.txt"
        failures=$((failures + 1))
        return
    fi
    if [ "$want" -le 1 ] && [ ! -s gates.xml ]; then
        echo "FAIL $config: exit $got but no JUnit file"
        failures=$((failures + 1))
        return
    fi
    echo "ok   $config: exit $got"
}

expect pass.yaml 0
expect fail.yaml 1
expect typo.yaml 2

# The CI idiom: `if edgeplan check; then ...` and `edgeplan check || status=$?`.
cp "$here/pass.yaml" edgeplan.yaml
if edgeplan check > /dev/null 2>&1; then echo "ok   if-then: passed"; else
    echo "FAIL if-then: the passing config did not pass"; failures=$((failures + 1)); fi
cp "$here/fail.yaml" edgeplan.yaml
status=0
edgeplan check > /dev/null 2>&1 || status=$?
if [ "$status" -eq 1 ]; then echo "ok   status capture: 1"; else
    echo "FAIL status capture: $status, expected 1"; failures=$((failures + 1)); fi

exit "$failures"
