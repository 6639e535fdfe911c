"""Simulators of the accounting and bonus systems: real HTTP endpoints for the demo and tests.

Mounted at ``/simulators/`` when ``FLOWDESK_SIMULATORS`` is on. Faults (down, latency, error
rate) per system come from ``FLOWDESK_SIMULATOR_FAULTS`` and the ``SimulatorFault`` rows.
"""
