"""The HTTP side of the client port: health, version, metrics and etcd's v3 JSON gateway.

``front`` splits each accepted connection between gRPC and HTTP; ``app`` serves the HTTP side
with aiohttp; ``jsongw`` calls the same servicer objects as gRPC (rpc/services.py), so
validation, auth checks and errors are the ones gRPC clients get.
"""
