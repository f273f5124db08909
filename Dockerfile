# ICE runtime node image. Build: docker build -t ice-runtime .
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY machines ./machines
COPY actors ./actors
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
ENV ICE_LOG_FORMAT=json
VOLUME /data
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["start", "--nats", "nats://nats-1:4222", "--data", "/data"]
