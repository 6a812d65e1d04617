"""MQTT 3.1.1 and 5: a sans-I/O codec, the wire engine on it, and an aiomqtt engine."""
