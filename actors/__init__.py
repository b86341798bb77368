"""The broker's actors: connections, channels, exchanges, queues and consumers."""
