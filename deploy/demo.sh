#!/bin/sh
# make demo: launch the example VM over local nodes on loopback.
set -eu
build="${1:-build}"
exec "$build/bin/spanvm" launch deploy/examples/3node.json
