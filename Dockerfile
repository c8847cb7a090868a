# pyetcd as a container: the same server `make run` starts, on python:3.11-slim.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /var/lib/etcd
EXPOSE 2379 2380
ENTRYPOINT ["pyetcd"]
