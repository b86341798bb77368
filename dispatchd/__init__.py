"""dispatchd: an AMQP 0-9-1 message broker built from Pykka actors."""

__version__ = "0.1.0"

RABBITMQ_VERSION = "3.10.8"
"""The RabbitMQ release whose behaviour dispatchd matches (``rabbitmq_version`` in the API,
``dispatchd ctl version``): tools gate features on it."""
