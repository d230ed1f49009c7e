# Loaded by Python at start-up when this folder is on PYTHONPATH (test/integration/interop.test.ts).
# The tutorial's code connects to pika.ConnectionParameters(host='localhost'), port 5672: when the
# suite's broker is a private node on another port (FIBRPC_TEST_AMQP_PORT), this points that
# connection there, so the tutorial's files still run byte for byte as published.
import os

_port = os.environ.get("FIBRPC_TEST_AMQP_PORT")
if _port:
    import pika

    _init = pika.ConnectionParameters.__init__

    def _init_on_the_suites_broker(self, *args, **kwargs):
        if len(args) < 2 and "port" not in kwargs:
            kwargs["port"] = int(_port)
        _init(self, *args, **kwargs)

    pika.ConnectionParameters.__init__ = _init_on_the_suites_broker
