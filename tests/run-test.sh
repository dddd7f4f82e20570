#!/bin/sh
# make check runs every test program through this (prove --exec): the
# program's own watchdog (tests/tap.h) names the phase that hung; this timeout
# is the backstop for a hang the watchdog cannot catch (SIGALRM blocked, a
# child that outlives it).  timeout(1) runs the program in its own process
# group and kills the whole group, so nothing it started survives.
t=$1
limit=${LAZYVM_TEST_TIMEOUT:-1200}
timeout -k 10 "$limit" "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "not ok - $(basename "$t") killed by make check's timeout after $limit s"
fi
exit "$rc"
