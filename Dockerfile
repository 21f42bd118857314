# One image for every process of the stack: workers, beat, Flower, metrics, migrations.
# Build stage: compilers stay here, for any dependency without a wheel on this platform.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agents ./agents
COPY lms ./lms
COPY migrations ./migrations
COPY models ./models
COPY tasks ./tasks
COPY workers ./workers
RUN pip install .

# Runtime stage: the virtualenv and a non-root user; state (beat schedule, Flower) in /data.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOOLBOX_DATA_DIR=/data
RUN useradd --create-home --uid 10001 --user-group toolbox \
    && mkdir /data \
    && chown toolbox:toolbox /data
COPY --from=build /opt/venv /opt/venv
USER toolbox
WORKDIR /home/toolbox
EXPOSE 5555 9808
CMD ["toolbox", "--help"]
