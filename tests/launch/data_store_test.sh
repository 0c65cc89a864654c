#!/usr/bin/env bash
# The training split's stores under mpirun, on real Fashion-MNIST converted to HDF5 and
# read by the loader thread: the partitioned store (each rank holds 1/W, every minibatch's
# rows exchanged) trains to the same bits as the resident one on 1, 2 and 4 ranks, with the
# budget forced small; a partitioned run stopped mid-epoch resumes to the same bits;
# the paged store (rows read in place from the file) gives the resident store's bits and
# resumes to them, and refuses a compressed split; streaming says it is not the exact
# permutation and resumes exactly; a budget too small for a part, and a data file cut
# short while it streams or is paged, stop the job with a line naming the file, the split
# and the rank.
# usage: data_store_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fashion 2500 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }

# train NAME NP [--set ...]: LeNet, 2 epochs of 2250 samples (a tenth held out), 1 thread.
train() {
  local name=$1 np=$2
  shift 2
  timeout -k 5 300 "$MPIEXEC" --oversubscribe -np "$np" "$HUBEL" train "$LENET" --threads 1 --run-dir "$T/$name" \
    --set data.file="$T/fm.h5" --set train.epochs=2 --set train.batch=64 "$@" > "$T/$name.log" 2>&1 ||
    { fail "$name: exit $?"; tail -5 "$T/$name.log"; return 1; }
}

# like_resident STORE NAME NP BANNER: run NAME (store STORE on NP ranks) said BANNER and
# trained to the resident run's bits (model, optimizer, held-out metrics).
like_resident() {
  local store=$1 name=$2 np=$3 banner=$4
  grep -q "^store: $store: .*fm.h5:/train (2 MiB) $banner" "$T/$name.log" ||
    fail "$np ranks: the banner does not say the store is $store: $(grep -m1 store: "$T/$name.log")"
  same "$(last "$T/resident-$np")" "$(last "$T/$name")" &&
    cmp -s <(cut -d, -f1-7 "$T/resident-$np/metrics.csv" 2> /dev/null) <(cut -d, -f1-7 "$T/$name/metrics.csv" 2> /dev/null) &&
    ok "$np rank(s): $store equals resident bit for bit (model, optimizer, held-out metrics)" ||
    fail "$np rank(s): $store differs from resident"
}

# 1.9 MiB of samples: a 1 MiB budget leaves the whole split resident nowhere, a part of
# it fits on 2 and 4 ranks (auto partitions), and 1 rank is told to partition.
for np in 1 2 4; do
  train resident-$np $np --set data.store=resident || continue
  if [ $np = 1 ]; then
    train parted-$np $np --set data.store=partitioned || continue
  else
    train parted-$np $np --set data.memory_mb=1 || continue
  fi
  like_resident partitioned parted-$np $np "in $np parts"
done

# Stopped mid-epoch (the loader threads ahead by different amounts), then resumed.
if train parted-stop 2 --set data.memory_mb=1 --set train.max_steps=30; then
  train parted-stop 2 --set data.memory_mb=1 --resume auto &&
    same "$(last "$T/parted-2")" "$(last "$T/parted-stop")" &&
    ok "partitioned on 2 ranks, stopped at step 30 and resumed: equal to the straight run" ||
    fail "partitioned on 2 ranks, stopped at step 30 and resumed: differs from the straight run"
fi

# Paged: rows read in place from the file, the same bits as resident on 1 and 2 ranks,
# and a run stopped mid-epoch resumes to them; a compressed split is refused, naming it.
for np in 1 2; do
  train paged-$np $np --set data.store=paged || continue
  like_resident paged paged-$np $np "left in the file"
done
if train paged-stop 2 --set data.store=paged --set train.max_steps=30; then
  train paged-stop 2 --set data.store=paged --resume auto &&
    same "$(last "$T/paged-2")" "$(last "$T/paged-stop")" &&
    ok "paged on 2 ranks, stopped at step 30 and resumed: equal to the straight run" ||
    fail "paged on 2 ranks, stopped at step 30 and resumed: differs from the straight run"
fi
if fashion 500 "$T/fmz.h5" --compress 1; then
  out=$("$HUBEL" train "$LENET" --run-dir "$T/paged-z" --set data.file="$T/fmz.h5" --set data.store=paged 2>&1)
  rc=$?
  [ $rc = 1 ] && grep -q "fmz.h5:/train/images: is stored byte-shuffled and compressed (deflate): its rows cannot be read in place" <<< "$out" &&
    ok "store: paged on a compressed split: refused (exit 1), $(grep -m1 -o 'is stored.*in place' <<< "$out")" ||
    fail "store: paged on a compressed split: exit $rc, $out"
else
  fail "converting a compressed Fashion-MNIST"
fi

# Streaming: said in the banner; a resumed run draws what the straight one drew.
if train stream 2 --set data.store=streaming --set data.shuffle_buffer=500; then
  grep -q "^store: streaming: .*NOT the exact global permutation.*minibatches an epoch" "$T/stream.log" &&
    grep -q "^exact: no (the streamed store" "$T/stream.log" &&
    grep -q "^streamed: rank 0 read [0-9]* MB from the file, [0-9]* MB/s over the training time" "$T/stream.log" &&
    ok "streaming: the banner says so: $(grep -m1 '^store:' "$T/stream.log" | cut -c1-90)..." ||
    fail "streaming: the banner does not say it is not the exact permutation"
  train stream-stop 2 --set data.store=streaming --set data.shuffle_buffer=500 --set train.max_steps=30 &&
    train stream-stop 2 --set data.store=streaming --set data.shuffle_buffer=500 --resume auto &&
    same "$(last "$T/stream")" "$(last "$T/stream-stop")" &&
    ok "streaming on 2 ranks, stopped at step 30 and resumed: equal to the straight run" ||
    fail "streaming, stopped and resumed: differs from the straight run"
fi

# Exact training asked of a streamed split: refused, saying why.
out=$("$HUBEL" train "$LENET" --run-dir "$T/exact-stream" --set data.file="$T/fm.h5" --set data.store=streaming \
  --set train.exact=true 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "train.exact: true needs the exact global permutation" <<< "$out" &&
  ok "train.exact: true with a streamed split: refused (exit 1)" || fail "train.exact with streaming: exit $rc, $out"

# A budget too small for a part: refused before training, naming the file, split and rank.
timeout -k 5 60 "$MPIEXEC" --oversubscribe -np 1 "$HUBEL" train "$LENET" --run-dir "$T/small" --set data.file="$T/fm.h5" \
  --set data.store=partitioned --set data.memory_mb=1 > "$T/small.log" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "rank 0: its part of $T/fm.h5:/train (2 MiB) over 1 ranks is 2 MiB, more than data.memory_mb: 1" "$T/small.log" &&
  ok "a part over the budget: exit 1, $(grep -m1 'its part' "$T/small.log" | cut -c1-100)..." ||
  fail "a part over the budget: exit $rc, $(tail -2 "$T/small.log")"

# The file cut short while it streams, or while rows are read in place: the rank that
# reads it names it and the job stops.
for store in streaming paged; do
  cp "$T/fm.h5" "$T/cut.h5"
  timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" --threads 1 --run-dir "$T/cut-$store" \
    --set data.file="$T/cut.h5" --set data.store=$store --set data.shuffle_buffer=100 --set train.epochs=200 \
    --set train.batch=64 > "$T/cut.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do grep -q "^epoch   2/" "$T/cut.log" && break; sleep 0.1; done
  truncate -s 200000 "$T/cut.h5"
  cut_at=$(date +%s%N)
  while kill -0 $pid 2> /dev/null && [ $((($(date +%s%N) - cut_at) / 1000000)) -lt 30000 ]; do sleep 0.1; done
  if kill -0 $pid 2> /dev/null; then
    fail "a data file cut short ($store): the job still runs 30 s later"
    kill -KILL $pid
    wait $pid
  else
    wait $pid
    rc=$? took=$((($(date +%s%N) - cut_at) / 1000000))
    line=$(grep -m1 "error: .*cut.h5" "$T/cut.log")
    [ $rc != 0 ] && grep -q "hubel (rank [01]): error: .*cut.h5:/train" <<< "$line" &&
      ok "a data file cut short ($store): exit $rc ${took} ms later: ${line:0:140}" ||
      fail "a data file cut short ($store): exit $rc, $(grep -m2 -i error "$T/cut.log")"
  fi
done

[ $failures = 0 ] && echo "data_store: all passed" || echo "data_store: $failures failed"
[ $failures = 0 ]
