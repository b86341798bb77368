"""``dispatchd ctl``: rabbitmqctl's verbs, spoken to a running broker over a Unix socket.

The broker listens on ``<data dir>/dispatchd.sock`` (mode 0600, and only peers of the
broker's own OS user are served: the role of RabbitMQ's Erlang cookie), so the command needs
no broker credentials and works with the admin port off. ``server.py`` is the broker's side,
``verbs.py`` what each verb does, ``output.py`` rabbitmqctl's table and JSON output, and
``client.py`` the command itself.
"""

SOCKET_NAME = "dispatchd.sock"

__all__ = ["SOCKET_NAME"]
