"""Checker benchmark (issue #5): detection-to-action latency per checker type on the
namespace lab, from the fault injected to the daemon's transition and to the action
done (application restarted, or VIP moved). See :mod:`benchmarks.checkers.run`."""
