#!/bin/sh
# flightcheck-nightly: the nightly audit run by contrib/systemd/flightcheck-audit.service
# or contrib/cron/flightcheck. Install it as /usr/local/sbin/flightcheck-nightly (mode 0755).
#
# 1. the last result, STATE/latest, becomes STATE/previous (only when it is complete: a
#    scan that failed leaves no result.json, and the older good one stays the baseline);
# 2. scan TARGET into STATE/latest (result.json and the reports), store it in the
#    history (STATE/history.sqlite) and reuse the ELF census cache (CACHE/elf.sqlite), so
#    unchanged files are not parsed again;
# 3. flightcheck diff previous -> latest: diff.txt, diff.json, diff.html in STATE/latest,
#    the text on standard output (the journal, or cron's mail);
# 4. exit 1 when a new finding at or above FLIGHTCHECK_FAIL_ON_NEW appeared (the unit
#    fails and its OnFailure= can send mail); 2 when the scan or the diff could not run;
#    else 0. A policy that already failed yesterday does not fail the run again: only
#    what is new does.
#
# Settings, from the environment (the unit's Environment=, or the cron line):
#   FLIGHTCHECK              the command (default: flightcheck on PATH; split on spaces,
#                            so "/opt/flightcheck/bin/python -m scanner" works)
#   FLIGHTCHECK_STATE        results and history (default /var/lib/flightcheck)
#   FLIGHTCHECK_CACHE        the census cache folder (default /var/cache/flightcheck)
#   FLIGHTCHECK_TARGET       what to scan (default /)
#   FLIGHTCHECK_SCAN_ARGS    more scan options. A hypervisor's whole fleet:
#                            FLIGHTCHECK_TARGET= FLIGHTCHECK_SCAN_ARGS="--all-domains --connect qemu:///system"
#                            (each guest goes to STATE/latest/NAME/ and is diffed on its own)
#   FLIGHTCHECK_FORMATS      reports besides result.json (default html,spdx-json)
#   FLIGHTCHECK_FAIL_ON_NEW  info, low, medium, high (default) or critical
set -u

FLIGHTCHECK=${FLIGHTCHECK:-flightcheck}
STATE=${FLIGHTCHECK_STATE:-/var/lib/flightcheck}
CACHE=${FLIGHTCHECK_CACHE:-/var/cache/flightcheck}
TARGET=${FLIGHTCHECK_TARGET-/}
SCAN_ARGS=${FLIGHTCHECK_SCAN_ARGS:-}
FORMATS=${FLIGHTCHECK_FORMATS:-html,spdx-json}
FAIL_ON_NEW=${FLIGHTCHECK_FAIL_ON_NEW:-high}

say() { printf 'flightcheck-nightly: %s\n' "$*"; }

mkdir -p "$STATE" "$CACHE" || exit 2

# 1. rotate
if [ -f "$STATE/latest/result.json" ] || [ -f "$STATE/latest/fleet.json" ]; then
    rm -rf "$STATE/previous" && mv "$STATE/latest" "$STATE/previous" || exit 2
else
    rm -rf "$STATE/latest"
fi

# 2. scan (exit 1 only says the policy fails, as it may have failed yesterday)
# shellcheck disable=SC2086  # FLIGHTCHECK and SCAN_ARGS are word lists on purpose
$FLIGHTCHECK scan ${TARGET:+"$TARGET"} $SCAN_ARGS -o "$STATE/latest" --format "$FORMATS" \
    --history "$STATE/history.sqlite" --cache "$CACHE/elf.sqlite" -q
scan_rc=$?
if [ "$scan_rc" -ge 2 ]; then
    if [ ! -f "$STATE/latest/result.json" ] && [ ! -f "$STATE/latest/fleet.json" ]; then
        say "the scan failed (exit $scan_rc); $STATE/previous stays the baseline"
        exit 2
    fi
    say "the scan reported an error (exit $scan_rc); comparing what it wrote"
fi

# 3. and 4. diff every result against the one of the same target from the night before
worst=0
found=0
for new in "$STATE/latest/result.json" "$STATE"/latest/*/result.json; do
    [ -f "$new" ] || continue
    found=$((found + 1))
    rel=${new#"$STATE/latest/"}
    old="$STATE/previous/$rel"
    what=$(dirname "$rel")
    [ "$what" = . ] && what=${TARGET:-the target}
    if [ ! -f "$old" ]; then
        say "$what: no earlier result to compare with (first run)"
        continue
    fi
    # shellcheck disable=SC2086
    $FLIGHTCHECK diff "$old" "$new" --format text,json,html -o "$(dirname "$new")" --fail-on-new "$FAIL_ON_NEW"
    rc=$?
    [ "$rc" -gt "$worst" ] && worst=$rc
done
[ "$found" -gt 0 ] || say "the scan wrote no result to compare"
[ "$scan_rc" -ge 2 ] && [ "$worst" -lt 2 ] && worst=2
exit "$worst"
