# A tutorial-style pika RPC client that sets W3C trace context headers itself, as a Python service
# instrumented by hand (or by opentelemetry-instrumentation-pika) would: one request, then the
# reply's body and headers as one JSON line on stdout.
# Usage: rpc_client.py AMQP_URL QUEUE N TRACEPARENT [TRACESTATE]; TRACEPARENT "bytes:..." sends bytes.
import json
import sys
import time
import uuid

import pika

url, queue, n, traceparent = sys.argv[1:5]
tracestate = sys.argv[5] if len(sys.argv) > 5 else None

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
callback_queue = channel.queue_declare(queue="", exclusive=True).method.queue
correlation_id = str(uuid.uuid4())
reply = {}


def on_reply(_channel, _method, properties, body):
    if properties.correlation_id == correlation_id:
        reply["body"] = body.decode()
        reply["headers"] = {k: v.decode() if isinstance(v, bytes) else v for k, v in (properties.headers or {}).items()}


channel.basic_consume(queue=callback_queue, on_message_callback=on_reply, auto_ack=True)
headers = {"traceparent": traceparent.encode()[6:] if traceparent.startswith("bytes:") else traceparent}
if tracestate is not None:
    headers["tracestate"] = tracestate
properties = pika.BasicProperties(reply_to=callback_queue, correlation_id=correlation_id, headers=headers)
channel.basic_publish(exchange="", routing_key=queue, properties=properties, body=n.encode())
deadline = time.monotonic() + 20
while "body" not in reply and time.monotonic() < deadline:
    connection.process_data_events(time_limit=1)
connection.close()
print(json.dumps(reply))
sys.exit(0 if "body" in reply else 1)
