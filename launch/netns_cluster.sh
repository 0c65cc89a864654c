#!/usr/bin/env bash
# A cluster of test hosts on one machine: network namespaces joined by veth pairs to a
# switch (a bridge in its own namespace), and mpirun across them over Open MPI's TCP
# transport, its remote launcher replaced by `ip netns exec`, no shared memory between
# hosts. Links can be shaped with tc netem. Needs root (or CAP_NET_ADMIN) and iproute2.
# Traffic stays inside the namespaces.
#
#   launch/netns_cluster.sh up HOSTS [RATE] [DELAY]   e.g. up 2 1gbit 50us
#   launch/netns_cluster.sh run HOSTS RANKS_PER_HOST COMMAND...   mpirun across the hosts
#   launch/netns_cluster.sh down HOSTS
#   launch/netns_cluster.sh check                      can namespaces be made here? (exit 0/1)
set -euo pipefail
PREFIX=hubel-h
SWITCH=hubel-sw
NET=10.77.0

host_ip() { echo "$NET.$(( $1 + 1 ))"; }

cmd=${1:-}
shift || true
case "$cmd" in
  check)
    ip netns add hubel-probe 2>/dev/null && ip netns del hubel-probe && exit 0
    echo "network namespaces cannot be created here (needs root and iproute2)" >&2
    exit 1
    ;;
  up)
    hosts=$1 rate=${2:-} delay=${3:-}
    "$0" down "$hosts" 2>/dev/null || true
    ip netns add $SWITCH
    ip -n $SWITCH link add br0 type bridge
    ip -n $SWITCH link set br0 up
    for ((h = 0; h < hosts; h++)); do
      ns=$PREFIX$h
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      # One veth pair per host: eth0 in the host, its peer on the switch's bridge.
      ip link add "hb$h" netns "$ns" type veth peer name "sw$h" netns $SWITCH
      ip -n "$ns" link set "hb$h" name eth0
      ip -n "$ns" addr add "$(host_ip "$h")/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n $SWITCH link set "sw$h" master br0
      ip -n $SWITCH link set "sw$h" up
      if [ -n "$rate" ] || [ -n "$delay" ]; then
        args=()
        [ -n "$rate" ] && args+=(rate "$rate")
        [ -n "$delay" ] && args+=(delay "$delay")
        if ! ip netns exec "$ns" tc qdisc add dev eth0 root netem "${args[@]}" 2>/dev/null; then
          # Kernels without sch_netem: shape the rate with a token bucket; no delay.
          [ -n "$delay" ] && [ "$h" -eq 0 ] && echo "warning: this kernel has no netem; links get no added delay" >&2
          [ -n "$rate" ] && ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency 100ms
        fi
      fi
    done
    echo "up: $hosts hosts $(host_ip 0) ... $(host_ip $((hosts - 1)))${rate:+, $rate}${delay:+, $delay}"
    ;;
  run)
    hosts=$1 per=$2
    shift 2
    agent=$(mktemp /tmp/hubel-netns-agent.XXXXXX)
    hostfile=$(mktemp /tmp/hubel-netns-hosts.XXXXXX)
    trap 'rm -f "$agent" "$hostfile"' EXIT
    # Open MPI's rsh launcher calls: AGENT HOST COMMAND-STRING. Run it in that host's namespace.
    cat > "$agent" <<AGENT
#!/bin/sh
host=\$1; shift
n=\${host##*.}
exec ip netns exec $PREFIX\$((n - 1)) /bin/sh -c "\$*"
AGENT
    chmod +x "$agent"
    for ((h = 0; h < hosts; h++)); do echo "$(host_ip "$h") slots=$per"; done > "$hostfile"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
    # mpirun itself runs on host 0.
    ip netns exec ${PREFIX}0 mpirun --hostfile "$hostfile" -np $((hosts * per)) \
      --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
      --mca btl tcp,self --mca btl_tcp_if_include $NET.0/24 --mca oob_tcp_if_include $NET.0/24 \
      --bind-to none "$@"
    ;;
  down)
    hosts=${1:-8}
    for ((h = 0; h < hosts; h++)); do ip netns del "$PREFIX$h" 2>/dev/null || true; done
    ip netns del $SWITCH 2>/dev/null || true
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
