# Sourced by bench/run.sh and bench/peers.sh.
#
# RECEIVE_CPU=N steers the loopback device's receive processing to core N
# (Receive Packet Steering on lo) for the run, and restores it after. On
# loopback the kernel delivers a datagram to the receiving socket on the
# core that sent it, so a server's sendmmsg also pays for every
# classroom's receive side (IP, UDP, the socket queue, the wake-up): work
# that on a network runs on the classroom's own machine. With RPS the
# sender's core stops at handing each datagram to the device, as it would
# with a NIC; the receive work moves to core N (the tool's). It needs
# root and a writable /sys/class/net/lo/queues/rx-0/rps_cpus.
RPS_FILE=/sys/class/net/lo/queues/rx-0/rps_cpus
RPS_SAVED=""

rps_start() {
  [[ -n "${RECEIVE_CPU:-}" ]] || return 0
  RPS_SAVED=$(cat "$RPS_FILE")
  printf '%x' $((1 << RECEIVE_CPU)) >"$RPS_FILE"
  echo "loopback receive processing steered to core $RECEIVE_CPU (rps_cpus $(cat "$RPS_FILE"), was $RPS_SAVED)"
}

rps_stop() {
  if [[ -n "$RPS_SAVED" ]]; then
    echo "$RPS_SAVED" >"$RPS_FILE" 2>/dev/null || true
    RPS_SAVED=""
  fi
}
