#!/usr/bin/env bash
# The training split's stores at scale, side by side in one run: a data set larger than a
# rank's budget (bench/make_images: 200,000 x [3, 64, 64] uint8, 2.5 GB) held resident (a
# copy per rank, the budget raised to fit), partitioned (1/W per rank, rows exchanged per
# minibatch) and streamed (runs of whole chunks through a shuffle buffer), on 1 and 2
# ranks: images/s of the data path alone (bench_loader --data-path) and of a real training
# of a tiny net (bench/experiments/tiny64.yaml; epoch 1 includes reading the split, epoch 2
# is the steady state), and each rank's peak RSS. The page cache is dropped before each
# run where the machine allows it (root, /proc/sys/vm/drop_caches writable); the output
# says which. Then what streaming costs in accuracy: LeNet on Fashion-MNIST, the exact
# shuffle against shuffle buffers of 10,000 and 1,000 samples, epoch by epoch.
#
#   bash bench/data_store.sh [COUNT] [BUDGET_MB]      (defaults 200000 and 1536)
set -u
cd "$(dirname "$0")/.."
COUNT=${1:-200000}
BUDGET=${2:-1536}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
[ -x /usr/bin/time ] || apt-get install -y -q time > /dev/null || { echo "needs /usr/bin/time (Debian: time)"; exit 1; }
cmake --build build -j2 --target hubel bench_loader make_images > /dev/null || exit 1
F=data/bench-images.h5
if [ ! -f $F ] || [ "$(cat $F.count 2> /dev/null)" != "$COUNT" ]; then
  build/bench/make_images $F "$COUNT" 3 64 64 10 && echo "$COUNT" > $F.count || exit 1
fi
SIZE_MB=$(($(stat -c %s $F) / 1048576))
E=bench/experiments/tiny64.yaml
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cold() {
  sync
  if echo 3 > /proc/sys/vm/drop_caches 2> /dev/null; then echo cold; else echo warm; fi
}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p'), $(nproc) cores"
echo "data: $F, $COUNT samples of [3, 64, 64], $SIZE_MB MiB; budget data.memory_mb: $BUDGET per rank (resident: raised to fit)"
echo "page cache: $(cold) (dropped before each run: $([ "$(cold)" = cold ] && echo yes || echo 'no, not allowed here'))"
echo
printf "%-5s %-12s %14s %16s %16s %16s %8s\n" ranks store "path img/s" "train e1 img/s" "train e2 img/s" "peak RSS/rank" cache
declare -A e2
for np in 1 2; do
  for store in resident partitioned streaming; do
    [ $store = partitioned ] && [ $np = 1 ] && continue
    mem=$BUDGET
    [ $store = resident ] && mem=$((SIZE_MB + 512))
    sets="data.file=$F data.store=$store data.memory_mb=$mem"
    c=$(cold)
    path=$(mpirun --oversubscribe --bind-to none -np $np build/bench/bench_loader --data-path $E $sets 2>&1 | grep -o "store .*: [0-9]* images/s" | grep -o "[0-9]* images/s")
    c=$(cold)
    args=()
    for s in $sets; do args+=(--set "$s"); done
    mpirun --oversubscribe --bind-to none -np $np /usr/bin/time -f "peak-rss-kb %M" build/launch/hubel train $E --threads $((2 / np)) \
      --run-dir "$T/$np-$store" "${args[@]}" > "$T/$np-$store.log" 2> "$T/$np-$store.err" ||
      { echo "$np $store: failed"; grep -m2 error "$T/$np-$store.err"; continue; }
    r1=$(grep -m1 "^epoch   1/" "$T/$np-$store.log" | grep -o "[0-9]* samples/s" | grep -o "[0-9]*")
    r2=$(grep -m1 "^epoch   2/" "$T/$np-$store.log" | grep -o "[0-9]* samples/s" | grep -o "[0-9]*")
    rss=$(grep -o "peak-rss-kb [0-9]*" "$T/$np-$store.err" | awk '{ if ($2 > m) m = $2 } END { printf "%.0f MB", m / 1024 }')
    e2[$np-$store]=$r2
    printf "%-5s %-12s %14s %16s %16s %16s %8s\n" $np $store "${path% images/s}" "$r1" "$r2" "$rss" "$c"
  done
done
echo
for k in 1-streaming 2-partitioned 2-streaming; do
  np=${k%%-*}
  [ -n "${e2[$k]:-}" ] && [ -n "${e2[$np-resident]:-}" ] &&
    echo "$k against $np-resident (epoch 2): $(awk -v a="${e2[$k]}" -v b="${e2[$np-resident]}" 'BEGIN { printf "%.3f", a / b }')"
done
echo "bound on the partitioned store's RSS per rank: split / 2 + 200 MB = $((SIZE_MB / 2 + 200)) MB"

# What the shuffle buffer costs: LeNet on Fashion-MNIST, 1 rank, val accuracy per epoch.
echo
echo "accuracy: LeNet (launch/experiments/lenet_modern.yaml) on Fashion-MNIST, 1 rank x 2 threads, 10 epochs"
[ -f data/fashion-mnist.h5 ] || build/launch/hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5 --classes fashion-mnist > /dev/null
for mode in exact 10000 1000; do
  extra=()
  [ $mode != exact ] && extra=(--set data.store=streaming --set data.shuffle_buffer=$mode)
  build/launch/hubel train launch/experiments/lenet_modern.yaml --threads 2 --run-dir "$T/acc-$mode" "${extra[@]}" \
    > "$T/acc-$mode.log" 2> "$T/acc-$mode.err" || { echo "$mode: failed"; grep -m2 error "$T/acc-$mode.err"; continue; }
  accs=$(grep "^epoch" "$T/acc-$mode.log" | sed 's/.*val loss [0-9.]* acc \([0-9.]*\).*/\1/' | tr '\n' ' ')
  first="not in 10" i=0
  for a in $accs; do
    i=$((i + 1))
    awk -v a="$a" 'BEGIN { exit !(a >= 0.89) }' && { first=$i; break; }
  done
  test=$(grep -o "test accuracy [0-9.]*" "$T/acc-$mode.log")
  printf "%-22s epochs to 89%% val: %-10s %s; val accuracy by epoch: %s\n" \
    "$([ $mode = exact ] && echo 'exact shuffle' || echo "shuffle buffer $mode")" "$first" "$test" "$accs"
done
