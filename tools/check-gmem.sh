#!/bin/sh
# check-gmem.sh BUILD_DIR [TEST...]   (make check-gmem)
#
# Runs lazyvm's guest_memfd tests (BUILD_DIR/tests/gmem-*, or the named ones) on a
# kernel that has userfaultfd for guest_memfd: builds it once with the shared scripts
# (shared/gmem-kernel/, cached by the hash of its inputs), boots it under QEMU TCG with
# the host's / read-only over 9p, runs tools/gmem/guest-run.sh inside, and re-emits
# the guest's TAP on stdout: one line per guest test, "<program>: " before each name,
# diagnostics kept.  Exits non-zero if a test failed or SKIPped (this kernel has what
# they need: a skip here is a failure), a program crashed or did not finish, the
# guest's lazyvm probe did not report gmem as lazy, or the guest did not run at all.
#
# Environment:
#   LAZYVM_GMEM_KERNEL_DIR  the gmem-kernel scripts (default: ../shared/gmem-kernel
#                           relative to the repository root)
#   LAZYVM_GMEM_CACHE       kernel cache: the image is kept in
#                           $LAZYVM_GMEM_CACHE/gmem-kernel-<hash>/bzImage (default
#                           /var/cache/lazyvm), <hash> over the build script, the
#                           config fragment, the patches and the source version
#   LAZYVM_GMEM_KERNEL      use this bzImage instead of building one
#   LAZYVM_GMEM_TIMEOUT     seconds the guest may run (default 480)
#   SMP, MEM                guest vCPUs (2) and MiB of RAM (2048), for boot-9proot.sh
set -eu

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [TEST...]" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
log() { echo "check-gmem: $*" >&2; }
t_start=$(date +%s)

# ---- the shared kernel scripts ---------------------------------------------
# They live outside the repository, in shared/gmem-kernel/ beside the checkout
# (CI clones the repository next to a copy of shared/).  Never copied in here.
KDIR=${LAZYVM_GMEM_KERNEL_DIR:-$REPO/../shared/gmem-kernel}
for f in build-gmem-kernel.sh boot-9proot.sh guest-init.sh kvm-uffd-gmem.config; do
	[ -f "$KDIR/$f" ] && continue
	log "$KDIR/$f not found: check-gmem needs shared/gmem-kernel/ next to the" \
	    "repository checkout (or LAZYVM_GMEM_KERNEL_DIR=/path/to/gmem-kernel)"
	echo "not ok 1 - the gmem-kernel scripts are present ($KDIR)"; echo "1..1"
	exit 1
done
ls "$KDIR"/patches/*.patch >/dev/null 2>&1 ||
	{ echo "not ok 1 - the gmem-kernel patches are present ($KDIR/patches)"; echo "1..1"; exit 1; }
KDIR=$(cd "$KDIR" && pwd)

# ---- packages (only what is missing; apt-get only as root) -----------------
need_pkgs() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	log "installing$missing"
	[ "$(id -u)" = 0 ] || { log "not root: install$missing first"; return 1; }
	apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs qemu-system-x86 ||
	{ echo "not ok 1 - qemu-system-x86 is missing and could not be installed"; echo "1..1"; exit 1; }

# ---- the kernel, built once per (script, config, patches, version) ---------
VER=${LINUX_SOURCE_VER:-7.3}
KERNEL=${LAZYVM_GMEM_KERNEL:-}
if [ -z "$KERNEL" ]; then
	key=$( { echo "linux-source-$VER"; cat "$KDIR/build-gmem-kernel.sh" \
		"$KDIR"/*.config "$KDIR"/patches/*.patch; } | sha256sum | cut -c1-16)
	CACHE=${LAZYVM_GMEM_CACHE:-/var/cache/lazyvm}/gmem-kernel-$key
	KERNEL=$CACHE/bzImage
	mkdir -p "$CACHE"
	# One builder at a time per key; a concurrent run waits, then reuses.
	exec 9>"$CACHE/lock"
	flock 9
	if [ ! -s "$KERNEL" ]; then
		need_pkgs make gcc flex bison bc libelf-dev libssl-dev xz-utils patch ||
			{ echo "not ok 1 - kernel build dependencies missing"; echo "1..1"; exit 1; }
		log "building the test kernel (linux-source-$VER + gmem uffd patches) in $CACHE"
		t0=$(date +%s)
		if ! bash "$KDIR/build-gmem-kernel.sh" "$CACHE/build" >"$CACHE/build.log" 2>&1; then
			tail -20 "$CACHE/build.log" | sed 's/^/# build: /'
			echo "not ok 1 - test kernel build failed (log: $CACHE/build.log)"; echo "1..1"
			exit 1
		fi
		cp "$CACHE/build/linux-source-$VER/arch/x86/boot/bzImage" "$KERNEL.tmp"
		mv "$KERNEL.tmp" "$KERNEL"
		# The tree is ~2 GB and a new key means a new tree: keep only the image.
		[ -n "${LAZYVM_GMEM_KEEP_BUILD:-}" ] || rm -rf "$CACHE/build"
		log "kernel built in $(($(date +%s) - t0)) s: $KERNEL"
	else
		log "kernel from cache: $KERNEL"
	fi
	exec 9>&-
fi
[ -s "$KERNEL" ] || { echo "not ok 1 - no kernel at $KERNEL"; echo "1..1"; exit 1; }

# ---- the guest command -------------------------------------------------------
# The guest sees the host's / read-only but mounts a tmpfs on /tmp and /run,
# which hides a checkout (or shared/) that lives there — as CI's may.  So what
# the guest runs is staged in a directory outside both: the CLI, the gmem
# tests, the runner, and the boot scripts (the kernel's init is read from it).
ls "$BUILD"/tests/gmem-* >/dev/null 2>&1 ||
	{ echo "not ok 1 - no gmem tests in $BUILD/tests (run make first)"; echo "1..1"; exit 1; }
OUT=$BUILD/check-gmem
mkdir -p "$OUT"
STAGE=$(mktemp -d /var/tmp/lazyvm-check-gmem.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT INT TERM
mkdir -p "$STAGE/build/tests" "$STAGE/kernel"
cp "$BUILD/lazyvm" "$STAGE/build/"
for t in "$BUILD"/tests/gmem-*; do
	case $t in *.o|*.d) ;; *) cp "$t" "$STAGE/build/tests/" ;; esac
done
cp "$HERE/gmem/guest-run.sh" "$STAGE/"
cp "$KDIR/boot-9proot.sh" "$KDIR/guest-init.sh" "$STAGE/kernel/"
chmod 755 "$STAGE" "$STAGE/kernel/guest-init.sh"
# boot-9proot.sh runs one host path with no arguments: a wrapper carries them.
{
	echo "#!/bin/sh"
	printf 'exec sh %s %s' "$STAGE/guest-run.sh" "$STAGE/build"
	for t in "$@"; do printf ' %s' "$t"; done
	echo
} >"$STAGE/guest-cmd.sh"
chmod +x "$STAGE/guest-cmd.sh"

log "booting $(basename "$(dirname "$KERNEL")")/bzImage under QEMU TCG (${SMP:-2} vCPUs, ${MEM:-2048} MiB)"
t0=$(date +%s)
set +e
TIMEOUT=${LAZYVM_GMEM_TIMEOUT:-480} sh "$STAGE/kernel/boot-9proot.sh" "$KERNEL" "$STAGE/guest-cmd.sh" \
	</dev/null >"$OUT/console.log" 2>&1
qrc=$?
set -e
log "guest ran $(($(date +%s) - t0)) s (qemu exit $qrc); console: $OUT/console.log"

# ---- the guest's TAP, re-emitted ---------------------------------------------
# Lines "@@prog: X" are prog's output; "@@prog: @@@ rc=N" its exit status.
set +e
tr -d '\r' <"$OUT/console.log" | awk -v qrc="$qrc" '
function emit(bad, text) {
	n++
	printf "%s %d - %s\n", bad ? "not ok" : "ok", n, text
	if (bad)
		fail++
}
function finish(p,    why) {
	why = ""
	if (rc[p] != 0 && !failed[p])
		why = "exited with status " rc[p]
	if (plan[p] != ran[p])
		why = why (why ? "; " : "") "planned " plan[p] + 0 " tests, ran " ran[p] + 0
	if (why)
		emit(1, p ": " why)
	finished[p] = 1
}
/^@@@ gmem-runner start/ { started = 1; sub(/^@@@ gmem-runner start /, ""); print "# guest: " $0; next }
/^@@@ gmem-runner done/ { done = 1; next }
/^@@@ probe: / { sub(/^@@@ probe: /, ""); print "# guest lazyvm probe: " $0; next }
/^@@@ gmem-lazy: / {
	sub(/^@@@ gmem-lazy: /, "")
	emit($0 !~ /=yes$/, "lazyvm probe in the guest: gmem x " $0)
	next
}
/^@@[A-Za-z0-9_.+-]+: / {
	p = substr($1, 3, length($1) - 3)
	line = substr($0, length($1) + 2)
	if (!(p in seen)) { seen[p] = 1; order[++np] = p }
	if (line ~ /^@@@ rc=/) { rc[p] = substr(line, 8) + 0; finish(p); next }
	if (line ~ /^@@@ seconds=/) { print "# " p ": ran " substr(line, 13) " s in the guest"; next }
	if (line ~ /^1\.\.[0-9]+/) { plan[p] = substr(line, 4) + 0; next }
	if (line ~ /^(not )?ok /) {
		ran[p]++
		bad = line ~ /^not ok/ && line !~ /# TODO/
		# This kernel has userfaultfd on guest_memfd: nothing here may
		# skip (a skip would hide exactly what check-gmem is for).
		skip = !bad && line ~ /# SKIP/
		sub(/^(not )?ok [0-9]* *(- )?/, "", line)
		if (skip) {
			bad = 1
			sub(/# SKIP/, "# skipped inside the test kernel, where it must run:", line)
		}
		if (bad)
			failed[p]++
		emit(bad, p ": " line)
		next
	}
	if (line ~ /^Bail out!/) { failed[p]++; emit(1, p ": " line); next }
	sub(/^# ?/, "", line)
	print "# " p ": " line
	next
}
# A kernel BUG/oops/panic in the guest fails the run even if no test noticed
# (loglevel=4: these print, warnings do not).
/(BUG:|Oops:|Kernel panic|general protection fault|Call Trace:)/ { emit(1, "guest kernel: " $0) }
{ tail[++nt % 25] = $0 }
END {
	for (i = 1; i <= np; i++)
		if (!finished[order[i]])
			emit(1, order[i] ": did not finish (guest crashed, hung or timed out)")
	if (!started)
		emit(1, "the guest booted and started the test runner (qemu exit " qrc ")")
	else if (np == 0)
		emit(1, "the guest found gmem tests to run")
	if (started && !done)
		emit(1, "the guest test runner ran to completion")
	if (!started || !done)
		for (i = nt - 24; i <= nt; i++)
			if (i > 0)
				print "# console: " tail[i % 25]
	print "1.." n
	exit fail ? 1 : 0
}'
rc=$?
log "$( [ $rc = 0 ] && echo PASS || echo FAIL ) in $(($(date +%s) - t_start)) s"
exit $rc
