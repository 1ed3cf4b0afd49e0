# Run under the MicroPython Unix port with the firmware on the path:
#   micropython mqtt_backpressure.py PORT TASKS COUNT SIZE
# Connects to a server that reads slowly, then publishes COUNT messages of SIZE
# bytes from each of TASKS tasks at once, so that the socket's buffer fills and
# the senders wait on each other. Prints "sent N" when every publish returned.
import asyncio
import sys

from mqtt import MQTTClient

port, tasks, count, size = (int(a) for a in sys.argv[1:5])


async def publish_all(client, task):
    for i in range(count):
        payload = b"%03d:%06d:" % (task, i)
        await client.publish("t/%d" % task, payload + b"x" * (size - len(payload)), 1)


async def main():
    client = MQTTClient("backpressure", "127.0.0.1", port)
    await client.connect()
    await asyncio.gather(*(publish_all(client, t) for t in range(tasks)))
    await client.disconnect()
    print("sent", tasks * count)


asyncio.run(main())
