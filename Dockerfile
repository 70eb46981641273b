# syntax=docker/dockerfile:1
# Multi-stage: a full Rust toolchain (plus cmake/clang for llama.cpp) builds chatapi and fetches
# the default model; the runtime image holds only the binary, its config, the model, what
# llama.cpp links against and the programs video processing runs (ffmpeg, tesseract), and runs
# as an unprivileged user.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3 -m pip config set global.break-system-packages true \
 && ./scripts/fetch-model.sh
# GGML_NATIVE=OFF: whisper-rs-sys would otherwise build whisper.cpp for this build machine's CPU
# (llama-cpp-sys-2 already turns it off); both get the AVX2/FMA/F16C of .cargo/config.toml. The
# benchmark (`bench/`) is not built: the image serves, it does not measure.
RUN GGML_NATIVE=OFF cargo build --release --locked -p chatapi -p chatapi-whisper --bins \
 && strip target/release/chatapi target/release/chatapi-whisper

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl ffmpeg tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app chatapi
WORKDIR /app
COPY --from=build /src/target/release/chatapi /usr/local/bin/chatapi
COPY --from=build /src/target/release/chatapi-whisper /usr/local/bin/chatapi-whisper
COPY --from=build /src/models/SmolLM2-135M-Instruct.Q4_1.gguf /src/models/ggml-tiny.en-q8_0.bin /app/models/
COPY --from=build /src/models/all-MiniLM-L6-v2/ /app/models/all-MiniLM-L6-v2/
COPY config/ /app/config/
# The video library's database and files (storage.dir = "data", relative to /app).
RUN mkdir -p /app/data && chown chatapi /app/data
VOLUME /app/data
USER chatapi
# Listen on every interface inside the container; publish the port to choose who reaches it.
ENV CHATAPI__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM starts the graceful shutdown (streams get server.shutdown_grace, then end with [DONE]).
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatapi"]
CMD ["--log-format", "json"]
