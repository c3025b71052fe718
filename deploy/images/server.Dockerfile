# The image of the labdeck server (`labdeck server`) and of the model servers (`labdeck serve`):
# one image, because a deployment's pods run the same program the server does.
#
#   docker build -f deploy/images/server.Dockerfile -t ghcr.io/labdeck/labdeck:0.1.0 .
#   (or `make images` at the repository's root)
#
# The build context is the repository's root; .dockerignore keeps it to what the wheel needs.
# Nothing secret is baked in: the database URL, S3 keys, the OIDC client secret and the session
# key reach the pods as environment variables from Kubernetes Secrets (docs/install-kubernetes.md).
# No HEALTHCHECK: Kubernetes probes /health (server) and /v2/health/live (model servers).

# Both stages start from the same base, pinned by patch version and by the digest of its
# multi-platform index, so that the venv built in the first runs unchanged in the second.
FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3 AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /dist .

# The extras a cluster needs: PostgreSQL, S3, the Kubernetes client, and every serving runtime
# (xgboost, lightgbm, onnx; mlflow for pyfunc models). The set is checked against pyproject.toml
# by tests/cluster/test_images.py.
RUN python -m venv /opt/labdeck \
 && wheel="$(ls /dist/labdeck-*.whl)" \
 && /opt/labdeck/bin/pip install "${wheel}[postgres,s3,k8s,xgboost,lightgbm,onnx,mlflow]"

FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

# libgomp1: the OpenMP runtime that the lightgbm (and xgboost) wheels load but do not bundle.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# uid and gid 10001: what the rendered pods ask for (runAsUser, fsGroup), so files the image
# holds and files the volumes get agree.
RUN groupadd --system --gid 10001 labdeck \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/labdeck --create-home \
        --shell /usr/sbin/nologin labdeck

COPY --from=builder /opt/labdeck /opt/labdeck

# The root filesystem is read-only in the pods; /tmp is an emptyDir, so the data folder
# (caches only, on a cluster) and Python's own caches go there.
ENV PATH=/opt/labdeck/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LABDECK_DATA_DIR=/tmp/labdeck \
    XDG_CACHE_HOME=/tmp/.cache

USER 10001:10001
WORKDIR /home/labdeck

# 8080: the server; 9000 and 9001: a model server's HTTP and gRPC ports.
EXPOSE 8080 9000 9001
ENTRYPOINT ["labdeck"]
CMD ["server", "--host", "0.0.0.0", "--port", "8080"]
