"""Real servers on loopback for the tests, the benchmarks and the demo.

Each server harness has the same shape: ``start(state_dir)`` provisions a fresh server
in a state directory of its own and waits until it is ready, a look-up finds the one a
previous command left running (and still answering), and ``stop(state_dir)`` ends it
(a shutdown signal to its process group, then SIGKILL). The same commands run from the
shell as ``python -m local_servers.<server> start|stop|status --state-dir DIR``.

* :mod:`local_servers.processes`: what every harness shares (free ports, stopping a
  process group or a recorded pid, waiting for readiness, log tails, a file lock, the
  download cache, the command line).
* :mod:`local_servers.kafka`: a single-node Apache Kafka broker with PLAINTEXT, SASL,
  TLS, mutual-TLS and Amazon MSK IAM listeners.
* :mod:`local_servers.postgres`: a PostgreSQL server with password authentication,
  from the pgserver wheel's or Debian's binaries.
"""
