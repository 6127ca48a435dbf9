#!/usr/bin/env bash
# Copies the seed inputs into fuzz/corpus/<target>/ (gitignored):
# docs/scenarios/*.scn for scenario_parser and core_events, examples/*.toml
# for config_parser, a few fixed byte strings for line_splitter.
# Safe to run again: it only adds files.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corpus="$root/fuzz/corpus"
mkdir -p "$corpus"/{scenario_parser,core_events,config_parser,line_splitter,control_request}
for f in "$root"/docs/scenarios/*.scn; do
    [ -e "$f" ] || continue
    cp "$f" "$corpus/scenario_parser/"
    cp "$f" "$corpus/core_events/"
done
for f in "$root"/examples/*.toml; do
    [ -e "$f" ] || continue
    cp "$f" "$corpus/config_parser/"
done
# line_splitter: limit byte, cut-count byte, cut points, then the input.
printf '\x03\x02\x05\x09hello world\nsecond line\n\nthird' >"$corpus/line_splitter/seed-lines"
printf '\x00\x01\x04\n\n\nabc\n' >"$corpus/line_splitter/seed-empty-lines"
# control_request: one request per operation, and a broken one.
for op in status version metrics watch shutdown; do
    printf '{"v":1,"id":1,"op":"%s"}' "$op" >"$corpus/control_request/seed-$op"
done
printf '{"v":1,"id":2,"op":"restart","names":["web","db"]}' >"$corpus/control_request/seed-restart"
printf '{"v":1,"op":"signal","signal":"USR1","all":true}' >"$corpus/control_request/seed-signal"
printf '{"v":1,"op":"logs","name":"web","lines":10,"follow":true}' >"$corpus/control_request/seed-logs"
printf '{"v":1,"op":"reload","dry_run":true}' >"$corpus/control_request/seed-reload"
printf '{"v":1,"op":"stat' >"$corpus/control_request/seed-broken"
echo "seeded $corpus:"
for d in "$corpus"/*/; do echo "  $(basename "$d"): $(ls "$d" | wc -l) files"; done
