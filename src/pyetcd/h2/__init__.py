"""gRPC for the client port on a native HTTP/2 thread (nghttp2), in grpcio's server's place."""
