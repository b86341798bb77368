"""The AMQP 0-9-1 wire layer: codec, framing, connection handling."""
