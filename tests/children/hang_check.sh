#!/bin/sh
# A health check script that never finishes (and starts a child that would hang too).
echo "checking $PMDAEMON_NAME"
sleep 1000 &
echo "$!" >> "$1"
echo "$$" >> "$1"
wait
