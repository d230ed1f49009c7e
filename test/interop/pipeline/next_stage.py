# The next stage of a fibrpc pipeline (call --reply-to QUEUE --no-wait), in another language: reads
# every message now in QUEUE, checks each result against its own fib, keeps the first reply of each
# correlation id (a server that dies between reply and ack answers again: docs/protocol.md), and
# prints one JSON line: the results by correlation id, and how many were duplicates, wrong, or not
# persistent (a broker restart would lose those from the durable queue).
# Usage: next_stage.py AMQP_URL QUEUE
import json
import sys

import pika

url, queue = sys.argv[1:3]


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
# The queue exists (call declared it): passive, its message count is everything the stage has to read.
count = channel.queue_declare(queue=queue, passive=True).method.message_count
results = {}
duplicates = 0
transient = 0
wrong = []
for _ in range(count):
    method, properties, body = channel.basic_get(queue=queue, auto_ack=True)
    if method is None:
        break
    reply = json.loads(body)
    if properties.delivery_mode != 2:
        transient += 1
    if properties.correlation_id in results:
        duplicates += 1
        continue
    n = reply["n"]
    if properties.type == "error" or reply.get("result") != str(fib(n)):
        wrong.append(reply)
    results[properties.correlation_id] = n
connection.close()
print(
    json.dumps(
        {"read": count, "results": results, "duplicates": duplicates, "transient": transient, "wrong": wrong[:10]}
    )
)
