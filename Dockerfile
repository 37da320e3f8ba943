# One image for the streams worker, the agent and the dashboard.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ttfb ttfb
COPY producers producers
COPY agents agents
COPY streams streams
COPY dashboard dashboard
# CPU torch by default; build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 for GPUs
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch --index-url ${TORCH_INDEX} && pip install --no-cache-dir -e .
# the decision folds compiled by mypyc (ttfb/native.py); the C compiler is for the build only
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir "mypy>=1.8" && python -m ttfb.native build \
 && python -m ttfb.native status \
 && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV TTFB_DATA_DIR=/data
CMD ["python", "-m", "streams.app"]
