# One image for every part; the command chooses which one runs:
#   docker run attimo gateway | api | dataflow | demo
FROM node:20-bookworm-slim AS tracker
WORKDIR /src/tracker_js
COPY tracker_js/package.json tracker_js/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tracker_js/ ./
RUN npm run build

FROM node:20-bookworm-slim AS dashboard
WORKDIR /src/ui
COPY api/dashboard/ui/package.json api/dashboard/ui/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 ATTIMO_HOST=0.0.0.0 ATTIMO_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY state/ state/
COPY dataflows/ dataflows/
COPY api/ api/
COPY benchmarks/ benchmarks/
COPY --from=dashboard /src/ui/node_modules/uplot/dist/uPlot.iife.min.js /src/ui/node_modules/uplot/dist/uPlot.min.css api/dashboard/static/vendor/
RUN pip install --no-cache-dir .
COPY --from=tracker /src/tracker_js/dist/ tracker_js/dist/
VOLUME ["/data"]
EXPOSE 8000 8001
ENTRYPOINT ["attimo"]
CMD ["api"]
