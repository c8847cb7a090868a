# pyetcd as a container: the same server `make run` starts, on python:3.11-slim.
# The wheel is built in python:3.11, which has the C compiler and OpenSSL headers gateway/_pump.c needs (the slim
# image has none; it has the OpenSSL library the wheel links to), with nghttp2's headers for h2/_h2.c.
FROM python:3.11 AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libnghttp2-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libnghttp2-14 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /var/lib/etcd
EXPOSE 2379 2380
ENTRYPOINT ["pyetcd"]
