# One image for every Orderflow process; the Helm chart picks the command:
#   python -m functions          HTTP functions (uvicorn, API_PORT 8000)
#   python -m workers.order      order worker   (health/metrics on 9101)
#   python -m workers.shipping   shipping worker (health/metrics on 9102)
#   python -m orderflow.migrate  database migrations (the chart's hook Job)
#   python -m orderflow.smoke    one order end to end (the chart's `helm test`)
# Build: docker build -t orderflow:dev .     (the loadtest target: see k8s/loadtest-job.yaml)
# BASE_IMAGE: any image with the official Python image's layout (python on PATH with venv);
# the container tests build on a local stand-in, since no registry is reachable there
# (docs/containers.md).
# Pin it by digest for reproducible builds: BASE_IMAGE=python:3.12-slim-bookworm@sha256:<digest>.
# The digest is NOT pinned here yet: no container registry was reachable where this was
# written, and a digest that was not looked up would be invented. To pin or update it:
#   docker buildx imagetools inspect python:3.12-slim-bookworm   (the "Digest:" line, the
#   multi-arch index) or: docker pull python:3.12-slim-bookworm && docker inspect \
#   --format '{{index .RepoDigests 0}}' python:3.12-slim-bookworm
# and put "@sha256:..." after the tag below (keep the tag: it says what the digest is).
ARG BASE_IMAGE=python:3.12-slim-bookworm

# --- build: install into a virtualenv (wheels only; no compiler needed) ---
# The dependencies are requirements/image.txt: every package pinned with its hashes,
# exported from uv.lock (`make lock`); pip refuses anything else (--require-hashes).
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements/image.txt ./requirements/
RUN /opt/venv/bin/pip install --require-hashes --only-binary=:all: --no-compile \
      -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY orderflow ./orderflow
COPY functions ./functions
COPY workers ./workers
COPY loadtest ./loadtest
RUN /opt/venv/bin/pip install --no-deps --no-compile . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- runtime: the virtualenv and the migrations, nothing else ---
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MIGRATIONS_DIR=/app/migrations \
    API_HOST=0.0.0.0 \
    WORKER_HTTP_HOST=0.0.0.0 \
    LOG_FORMAT=json
COPY --from=build /opt/venv /opt/venv
COPY migrations /app/migrations
WORKDIR /app
# A numeric, unprivileged user: Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 10001:10001
EXPOSE 8000 9101 9102
# Docker-only; Kubernetes uses the chart's probes. Checks the API, the image's default command.
HEALTHCHECK --interval=30s --timeout=3s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('API_PORT', '8000') + '/healthz', timeout=2)"]
CMD ["python", "-m", "functions"]

# --- loadtest: the runtime plus locust and the load tool (loadtest/, make k8s-load) ---
FROM runtime AS loadtest
USER 0:0
# The runtime's packages plus the `load` extra, pinned with hashes like the rest.
COPY requirements/loadtest.txt /tmp/loadtest-requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
      --only-binary=:all: -r /tmp/loadtest-requirements.txt \
 && rm /tmp/loadtest-requirements.txt
COPY loadtest /app/loadtest
USER 10001:10001
CMD ["locust", "-f", "loadtest/locustfile.py", "--headless"]
