"""streambench: a stream testbench for WebSocket, MQTT and HTTP back ends."""

__version__ = "0.1.0"
