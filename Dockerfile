FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY control ./control
COPY media_server ./media_server
COPY benchmarks ./benchmarks
RUN pip install --no-cache-dir .
ENV TELEVISIT__SERVER__HOST=0.0.0.0 \
    TELEVISIT__SERVER__DATA_DIR=/data \
    TELEVISIT__MEDIA__LISTEN_ADDRESSES=[]
VOLUME /data
EXPOSE 8080 40000-40999/udp
CMD ["televisit", "serve"]
