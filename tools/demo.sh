#!/bin/sh
# make demo: lazyvm's main job end to end on a real KVM guest.
#
#   1. run the `workload` guest on 1 GiB, 2 vCPUs, to completion (reference RESULT);
#   2. run it again and snapshot it mid-run;
#   3. verify the snapshot's checksums;
#   4. restore it lazily (memory arrives on fault + background stream) and
#      eagerly (all memory loaded before the first instruction);
#   5. print one table: every RESULT must be identical.
#
# Environment: LAZYVM (the CLI), DEMO_MEM (default 1G), DEMO_ITER, DEMO_AFTER_MS.
set -eu

LAZYVM=${LAZYVM:-./build/lazyvm}
MEM=${DEMO_MEM:-1G}
ITER=${DEMO_ITER:-1500000}
AFTER_MS=${DEMO_AFTER_MS:-1500}
SEED=42
VCPUS=2

for dev in /dev/kvm /dev/userfaultfd; do
	if [ ! -r "$dev" ] || [ ! -w "$dev" ]; then
		echo "demo: $dev is missing or not accessible (run as root on a KVM host)" >&2
		exit 1
	fi
done

work=$(mktemp -d /tmp/lazyvm-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# json FILE KEY: a number from lazyvm's flat --stats-json output.
json() {
	sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p" "$1" | head -n 1
}
# p50 of fault_latency_us (the nested object).
json_p50() {
	sed -n 's/.*"fault_latency_us": *{[^}]*"p50": *\([0-9.]*\).*/\1/p' "$1" | head -n 1
}
result_of() {
	sed -n 's/^RESULT \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1
}
step() {
	printf '\n== %s\n' "$*"
}

guest="--guest workload --mem $MEM --seed $SEED --iterations $ITER --vcpus $VCPUS"

step "1/5  uninterrupted run: $guest"
$LAZYVM run $guest --stats-json "$work/ref.json" | tee "$work/ref.out"

step "2/5  same run, snapshot after ${AFTER_MS} ms"
$LAZYVM run $guest --snapshot "$work/snap" --snapshot-after-ms "$AFTER_MS" \
	--stats-json "$work/snap.json" | tee "$work/snap.out"
du -sh --apparent-size "$work/snap/memory" | sed 's/^/   memory file (apparent): /'
du -sh "$work/snap/memory" | sed 's/^/   memory file (on disk):  /'

step "3/5  lazyvm snapshot verify"
$LAZYVM snapshot verify "$work/snap"

step "4/5  lazy restore (memory served on fault by userfaultfd, rest streamed)"
$LAZYVM restore "$work/snap" --stats-json "$work/lazy.json" | tee "$work/lazy.out"

step "5/5  eager restore (all memory loaded before the first instruction)"
$LAZYVM restore "$work/snap" --eager --stats-json "$work/eager.json" | tee "$work/eager.out"

ref=$(result_of "$work/ref.out")
lazy=$(result_of "$work/lazy.out")
eager=$(result_of "$work/eager.out")

printf '\n%-34s %18s %18s %18s\n' "" "uninterrupted" "lazy restore" "eager restore"
printf '%-34s %18s %18s %18s\n' "RESULT" "$ref" "$lazy" "$eager"
printf '%-34s %18s %18s %18s\n' "time to first instruction (us)" "-" \
	"$(json "$work/lazy.json" first_instruction_us)" "$(json "$work/eager.json" first_instruction_us)"
printf '%-34s %18s %18s %18s\n' "wall time (us)" "$(json "$work/ref.json" wall_us)" \
	"$(json "$work/lazy.json" wall_us)" "$(json "$work/eager.json" wall_us)"
printf '%-34s %18s %18s %18s\n' "uffd faults served" "-" \
	"$(json "$work/lazy.json" faults)" "$(json "$work/eager.json" faults)"
printf '%-34s %18s %18s %18s\n' "pages fetched on demand" "-" \
	"$(json "$work/lazy.json" pages_demand)" "$(json "$work/eager.json" pages_demand)"
printf '%-34s %18s %18s %18s\n' "pages fetched in background" "-" \
	"$(json "$work/lazy.json" pages_background)" "$(json "$work/eager.json" pages_background)"
printf '%-34s %18s %18s %18s\n' "fault service p50 (us)" "-" \
	"$(json_p50 "$work/lazy.json")" "-"

if [ -n "$ref" ] && [ "$ref" = "$lazy" ] && [ "$ref" = "$eager" ]; then
	printf '\ndemo: OK - the lazily and eagerly restored guests finished with the RESULT of the uninterrupted run\n'
else
	printf '\ndemo: FAILED - RESULTs differ (or a run printed none)\n' >&2
	exit 1
fi
