# One image for every Easel process: `easel worker`, `easel stub-webui`, (soon) `easel bot`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY common ./common
COPY jobs ./jobs
COPY workers ./workers
COPY bot ./bot
COPY easel ./easel
COPY webui_stub ./webui_stub
COPY gateway ./gateway
RUN pip install --no-cache-dir .
RUN mkdir -p /data && chown nobody /data
USER nobody
ENTRYPOINT ["easel"]
