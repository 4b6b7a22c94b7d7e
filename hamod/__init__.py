"""hamod: high availability for any Linux application.

Package layout (see DESIGN.md): ``core`` (pure state machine), ``config`` (schema),
``adapters`` (I/O), ``runtime`` (daemon wiring), ``api``/``cli`` (front ends) and
``testing`` (fakes, simulator, namespace lab shipped with the package).
"""

__version__ = "0.1.0.dev0"

#: Version of the wire protocol (heartbeats, peer link) and of the status store format.
PROTOCOL_VERSION = 1
