# sagepipe: top-level driver. Every target installs missing Debian packages
# first (tools/install-deps.sh; needs root or sudo only when something is missing).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
NP ?= 2

# mpirun as root needs these; 4 ranks on 2 cores need --oversubscribe.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1
export OPENBLAS_NUM_THREADS ?= 1
MPIRUN := mpirun --oversubscribe

.PHONY: all deps build build-asan demo test bench clean

all: build

deps:
	@tools/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@echo "built $(BUILD)/sagepipe"

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSAGEPIPE_SANITIZE=ON -DSAGEPIPE_CUDA=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test: unit, MPI (1, 2, 4 ranks), end to end, then the unit tests again under ASan+UBSan.
test: build build-asan
	cd $(BUILD) && ctest --no-tests=error --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --no-tests=error --output-on-failure -j $(JOBS) -L unit

# The whole pipeline on a generated sample with $(NP) MPI ranks.
demo: build
	@tools/demo.sh $(BUILD)/sagepipe $(NP)

bench: build
	@bench/run_all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) out
