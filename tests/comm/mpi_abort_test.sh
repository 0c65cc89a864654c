#!/usr/bin/env bash
# usage: mpi_abort_test.sh MPIEXEC PROGRAM: two ranks, rank 1 fails; the job must end
# non-zero within seconds and show rank 1's message.
set -u
start=$(date +%s)
out=$("$1" --oversubscribe -np 2 "$2" 2>&1)
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "$out" | head -5
echo "exit $rc after ${elapsed}s"
[ "$rc" -ne 0 ] || { echo "FAIL: mpirun exited 0"; exit 1; }
[ "$elapsed" -le 20 ] || { echo "FAIL: took ${elapsed}s"; exit 1; }
grep -q "rank 1 found a bad file at step 4" <<<"$out" || { echo "FAIL: the message is missing"; exit 1; }
echo "ok"
