# The PMS realtime server: one image for the app (uvicorn), the daphne variant, the job worker and
# the one-shot migration step of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, pinned by the lock file, so a code change does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install -c constraints.txt . \
    && rm -rf build *.egg-info

# collectstatic imports the settings, which refuse to start without a real-looking key
# when PMS_DEBUG is off; this throwaway value exists only during this build step.
RUN PMS_SECRET_KEY=collectstatic-at-build-time-only-never-used-to-sign-anything \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home pms
USER pms

EXPOSE 8000

# N uvicorn processes on port 8000 with the production flags (pms/server.py), each on a
# SO_REUSEPORT socket of its own (pms/launch.py): N = $WEB_CONCURRENCY, else the cores the
# container may use. Proxy headers are trusted only when PMS_TRUST_X_FORWARDED_FOR=1 (from
# PMS_FORWARDED_ALLOW_IPS). SIGTERM (docker stop) drains each process for PMS_DRAIN_SECONDS
# (/readyz 503) before the 1012 close: give `docker stop` more than that.
CMD ["python", "-m", "pms.server", "--host", "0.0.0.0", "--port", "8000"]
