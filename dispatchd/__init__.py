"""dispatchd: an AMQP 0-9-1 message broker built from Pykka actors."""

__version__ = "0.1.0"
