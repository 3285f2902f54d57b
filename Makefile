# Fuzzing the parsers with atheris (tests/fuzz/README.md says what each harness does).
#   make fuzz                  every harness for FUZZ_SECONDS (default 600) each, in turn
#   make fuzz HARNESSES=vmdk   one harness
#   make fuzz-smoke            every harness for a few seconds (CI runs tests/test_fuzz_smoke.py)
# Seeds are made on the fly into FUZZ_DIR/seeds; the corpus grows in FUZZ_DIR/corpus/HARNESS
# and a crash, timeout (over 1 s) or RSS over 512 MiB is written to FUZZ_DIR/artifacts/HARNESS.
# With clang, `make fuzz` first builds a copy of the Cython extensions instrumented for
# coverage in FUZZ_DIR/instrumented (the in-place build is untouched); without clang only
# the Python code gives the fuzzer coverage feedback.

PYTHON ?= python3
FUZZ_SECONDS ?= 600
FUZZ_DIR ?= build/fuzz
FUZZ_FLAGS ?= -timeout=1 -rss_limit_mb=512 -max_len=1048576 -print_final_stats=1
HARNESSES ?= $(shell $(PYTHON) tests/fuzz/fuzz.py --list)
CLANG ?= $(shell command -v clang 2>/dev/null)
INSTR := $(abspath $(FUZZ_DIR))/instrumented
FUZZ_ENV := $(if $(CLANG),PYTHONPATH=$(INSTR) IMGSCAN_FUZZ_LIBFUZZER=$(INSTR)/libfuzzer.so)

.PHONY: fuzz fuzz-smoke fuzz-seeds fuzz-build

fuzz: fuzz-seeds $(if $(CLANG),fuzz-build)
	@for h in $(HARNESSES); do \
	  echo "== fuzz $$h for $(FUZZ_SECONDS) s"; \
	  mkdir -p $(FUZZ_DIR)/corpus/$$h $(FUZZ_DIR)/artifacts/$$h; \
	  $(FUZZ_ENV) $(PYTHON) tests/fuzz/fuzz.py $$h $(FUZZ_FLAGS) \
	    -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/artifacts/$$h/ \
	    $(FUZZ_DIR)/corpus/$$h $(FUZZ_DIR)/seeds/$$h \
	    $$(test -d tests/fuzz/regressions/$$h && echo tests/fuzz/regressions/$$h) || exit 1; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=5 CLANG=

fuzz-seeds:
	rm -rf $(FUZZ_DIR)/seeds
	$(PYTHON) tests/fuzz/make_seeds.py $(FUZZ_DIR)/seeds

# The extensions rebuilt with clang's coverage hooks, and libFuzzer as a shared library
# that tests/fuzz/fuzz.py loads before atheris so that the hooks resolve.
# Incremental: a module is recompiled when its source is newer than the copy's build.
fuzz-build:
	mkdir -p $(INSTR)
	cp setup.py $(INSTR)/
	tar cf - --exclude='*.so' --exclude=__pycache__ imgscan | tar xf - -C $(INSTR)
	cd $(INSTR) && CC=clang LDSHARED="clang -shared" CFLAGS=-fsanitize=fuzzer-no-link \
	  $(PYTHON) setup.py -q build_ext --inplace
	clang -shared -o $(INSTR)/libfuzzer.so -Wl,--whole-archive \
	  $$(clang -print-runtime-dir)/libclang_rt.fuzzer_no_main-x86_64.a \
	  -Wl,--no-whole-archive -lstdc++ -lpthread -lm
