"""The one C extension (setuptools has no stable pyproject.toml form for it); all else is in pyproject.toml.

gateway/_pump.c relays the client port's gRPC connections on a native thread, and ends their TLS
(gateway/_tlsend.c, OpenSSL): in Python the relay costs gRPC tens of microseconds of CPU per
request. It is optional: without a C compiler or OpenSSL's headers the build goes on, and the
front relays in Python (gateway/front.py) while grpc ends TLS, saying so in its log.

h2/_h2.c serves the gRPC the front relays, with nghttp2, in grpcio's server's place (h2/server.py).
It is optional too: without nghttp2's headers grpc.aio serves it.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pyetcd.gateway._pump",
                             ["src/pyetcd/gateway/_pump.c", "src/pyetcd/gateway/_tlsend.c",
                              "src/pyetcd/gateway/_tlsalert.c"],
                             depends=["src/pyetcd/gateway/_pump.h", "src/pyetcd/gateway/_tlsalert.h"],
                             libraries=["ssl", "crypto"],
                             extra_compile_args=["-Wall", "-Wextra"], optional=True),
               Extension("pyetcd.h2._h2", ["src/pyetcd/h2/_h2.c", "src/pyetcd/h2/_h2conn.c",
                                                    "src/pyetcd/h2/_h2stream.c"],
                         depends=["src/pyetcd/h2/_h2.h"], libraries=["nghttp2"],
                         extra_compile_args=["-Wall", "-Wextra"], optional=True)])
