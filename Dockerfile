# sagepipe on Debian 12: the same path as the Makefile (install deps, build, test/run).
FROM debian:12
WORKDIR /src
COPY tools/install-deps.sh tools/install-deps.sh
RUN tools/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build
ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# e.g. docker run IMAGE mpirun --oversubscribe -np 2 build/sagepipe run --config configs/demo.ini --date 2026-11-21 --to graph
CMD ["make", "demo"]
