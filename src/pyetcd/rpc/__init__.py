"""Thin gRPC adapters for etcd's services: validate, call the server, map errors."""
