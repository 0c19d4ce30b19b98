# mmr-pipeline worker image. docker-compose.yml also runs the Prefect server and its background
# services from it, so the server and the workers always share one Prefect version.
#
#   docker build -t mmr-pipeline:local .
#
# torch comes from pip's default index (PyPI): the default Linux x86_64 torch wheel is built with
# CUDA and pulls the CUDA runtime libraries as nvidia-* wheels, so no CUDA base image is needed.
# A GPU host needs only the NVIDIA driver and the NVIDIA Container Toolkit; without a GPU the same
# image runs on the CPU.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies first, in their own layer: torch and the CUDA wheels are several GB and change far
# less often than the code. Empty stand-ins for the three packages let pip resolve '.[s3]' from
# pyproject.toml alone; `prefect[redis]` adds prefect-redis for the split server (same Prefect).
COPY pyproject.toml README.md ./
RUN mkdir pipeline flows stores \
    && touch pipeline/__init__.py flows/__init__.py stores/__init__.py \
    && pip install --no-cache-dir '.[s3]' 'prefect[redis]' \
    && pip uninstall --yes mmr-pipeline \
    && rm -rf pipeline flows stores build ./*.egg-info

# The project itself (non-editable; the source stays in /app for flow entrypoints).
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# Run as an unprivileged user; the code under /app stays root-owned and read-only to it. Prefect's
# home and the Hugging Face cache (a volume in docker-compose.yml) live in the user's home.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mmr \
    && mkdir -p /home/mmr/.cache/huggingface \
    && chown -R mmr:mmr /home/mmr/.cache
USER mmr

CMD ["prefect", "worker", "start", "--pool", "mmr-cpu", "--type", "process", "--with-healthcheck"]
