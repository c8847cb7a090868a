"""gRPC message limits shared by the client server and the watch stream."""

# etcd lets a request exceed --max-request-bytes by this much at the gRPC layer, so that an
# oversized request reaches the server and gets etcd's own "request is too large".
GRPC_OVERHEAD_BYTES = 512 * 1024
