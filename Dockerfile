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
ARG BASE_IMAGE=python:3.12-slim-bookworm

# --- build: resolve and install into a virtualenv (wheels only; no compiler needed) ---
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orderflow ./orderflow
COPY functions ./functions
COPY workers ./workers
COPY loadtest ./loadtest
RUN /opt/venv/bin/pip install --only-binary=:all: --no-compile . \
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
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      'locust>=2.30,<3' 'matplotlib>=3.8,<4'
COPY loadtest /app/loadtest
USER 10001:10001
CMD ["locust", "-f", "loadtest/locustfile.py", "--headless"]
