"""Durable storage (Peewee): arrives with the durability issue."""
