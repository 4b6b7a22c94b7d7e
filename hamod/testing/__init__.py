"""Test support shipped with the package: fakes of every port, the simulator, the lab."""
