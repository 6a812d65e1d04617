"""An MQTT device simulator: commands on ``devices/<id>/cmd``, answers on ``devices/<id>/reply``.

Each answer is the device's own envelope, written by ``json.dumps``:
``{"device": "<id>", "status": "ok", "ack": {"request": <the command's id>},
"reading": {...}}``. With ``--correlation`` it is an MQTT 5 responder instead:
it answers on the command's Response Topic with its Correlation Data, and the
payload carries no id at all.

    python -m tests.backends.servers.mqtt_device --port 1883
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


async def main(port: int, *, correlation: bool) -> None:
    rng = random.Random(1)
    async with aiomqtt.Client("127.0.0.1", port, identifier="device-simulator",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe("devices/+/cmd", qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            device = str(message.topic).split("/")[1]
            reading = {"temperature": round(rng.uniform(18, 24), 2)}
            if correlation:
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = message.properties.CorrelationData
                await client.publish(message.properties.ResponseTopic,
                                     json.dumps({"status": "ok", "reading": reading}), qos=1,
                                     properties=props)
                continue
            command = json.loads(message.payload)
            await client.publish(f"devices/{device}/reply", json.dumps(
                {"device": device, "status": "ok", "ack": {"request": command["cid"]},
                 "reading": reading}), qos=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--correlation", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.port, correlation=args.correlation))
