# syntax=docker/dockerfile:1
# shardkv image: one image for every role. The command picks the role, e.g.
#   kv shard start --id s1 ...   |   kv router start ...   |   kv topology init ...

FROM node:20-bookworm-slim AS build
WORKDIR /app
# lmdb and msgpackr-extract install prebuilt native binaries for linux-x64/arm64,
# so no compiler toolchain is needed.
COPY package.json package-lock.json ./
RUN npm ci
# Only what the build needs: the sources and the build config (tests and
# benchmarks are not part of the image).
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# package.json is needed at runtime: it marks dist/ as ES modules.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The image's own user `node` (uid 1000). A named volume mounted on /data copies
# this ownership the first time it is used.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# router HTTP, shard data, shard admin
EXPOSE 8080 7001 7101
ENTRYPOINT ["node", "dist/cli/kv.js"]
CMD ["--help"]
