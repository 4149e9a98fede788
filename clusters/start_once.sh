#!/usr/bin/env bash
# Start one of a node's services unless it already runs: the start commands of
# clusters/aws.yaml and clusters/aws-docker.yaml go through here.
#
# `ray up` runs the head's start commands again every time it is re-run (to push code, to
# change a setting). Stopping and restarting Ray there would end the search running on the
# cluster, and restarting MLflow would drop the driver's requests; so a service that already
# listens on its port at this node's address is kept, with one line saying so. To restart one
# on purpose, stop it first (docs/cluster.md, "Push code during a search").
#
#   start_once.sh NAME PORT [--log FILE] -- COMMAND [ARG...]
#
# COMMAND runs unless something listens on PORT at $AUGKD_NODE_IP (default: the node's first
# address, as `hostname -I` lists them). With --log FILE, COMMAND is a server: it runs in the
# background, in a session of its own, with its output in FILE.
set -euo pipefail

usage="usage: start_once.sh NAME PORT [--log FILE] -- COMMAND [ARG...]"
if (($# < 4)); then
    echo "$usage" >&2
    exit 2
fi
name=$1
port=$2
shift 2
log=""
if [[ $1 == --log ]]; then
    log=$2
    shift 2
fi
if [[ ${1:-} != -- || $# -lt 2 ]]; then
    echo "$usage" >&2
    exit 2
fi
shift
node_ip=${AUGKD_NODE_IP:-$(hostname -I | awk '{print $1}')}

if timeout 2 bash -c ": </dev/tcp/$node_ip/$port" 2>/dev/null; then
    echo "augkd: $name already runs on this node ($node_ip:$port); kept it running, so a" \
        "search using it goes on."
    exit 0
fi
if [[ -z $log ]]; then
    exec "$@"
fi
mkdir -p "$(dirname "$log")"
nohup setsid "$@" >"$log" 2>&1 </dev/null &
echo "augkd: started $name in the background (pid $!, output in $log)"
