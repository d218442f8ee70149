# One image for every Sluice process; the Procfile / docker-compose.yml pick the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SLUICE_VAR_DIR=/app/var
WORKDIR /app
# The hashed lock first (its own layer, re-used while it is unchanged), then Sluice itself
# without dependencies, so the image holds exactly the locked versions.
COPY requirements.txt ./
RUN pip install --no-cache-dir --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY config ./config
COPY apps ./apps
COPY manage.py Procfile ./
RUN pip install --no-cache-dir --no-deps . && mkdir -p /app/var \
    && SECRET_KEY=build python manage.py collectstatic --noinput >/dev/null
RUN useradd --system --home /app sluice && chown -R sluice /app/var
USER sluice
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4",
     "--limit-request-line", "8190"]
