# Lambda packages for `sam build`, included from the root Makefile.
#
# template.yaml gives every function `BuildMethod: makefile` and `CodeUri: .`, so sam build
# runs `make --makefile Makefile build-<LogicalId>` from the project root (with
# --build-in-source, which `make build` and samconfig.toml set: no copy of the tree) and
# ARTIFACTS_DIR set to that function's package directory. These targets are SAM's entry
# points, not commands for people, hence no help text.
#
# Neither Docker nor Python 3.12 is needed: pip fetches the cp312 manylinux wheels, pinned by
# constraints.txt to the versions the tests ran with. They are installed once per change of
# the requirements into .aws-sam/lambda-deps and copied from there, so a rebuild is quick and
# gives byte-identical packages (sam deploy then uploads nothing new and publishes no version).
# The Lambda runtime already has boto3/botocore: should a requirement pull them in, they are
# removed again (~30 MB).
#
# When this machine has a CPython 3.12 (the runtime's), the packages also ship its bytecode:
# Lambda cannot write __pycache__ into /var/task, so without it every cold start compiles every
# module (~0.27 s of the inference function's init, measured here). Hash-based .pyc files with
# the /var/task path are byte-identical from build to build. Without a 3.12, no bytecode ships.

LAMBDA_PYTHON ?= $(if $(wildcard $(PY)),$(PY),python3)
LAMBDA_PIP := $(LAMBDA_PYTHON) -m pip install --quiet --no-compile --no-warn-conflicts \
	--platform manylinux2014_x86_64 --implementation cp --python-version 3.12 --only-binary=:all: \
	$(if $(wildcard constraints.txt),-c constraints.txt)
LAMBDA_IN_RUNTIME := boto3 botocore s3transfer
# Every trained model ships (models/vN with a manifest), so any of them can be rolled out or back.
LAMBDA_MODELS := $(patsubst %/manifest.json,%,$(sort $(wildcard models/v*/manifest.json)))
LAMBDA_DEPS := .aws-sam/lambda-deps
LAMBDA_TASK_ROOT := /var/task
# Probed only when a build needs it: python3.12 on PATH, else pyenv's, if it really is 3.12.
LAMBDA_PYC_PYTHON ?= $(firstword $(foreach p,$(shell command -v python3.12) \
	$(sort $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12)),$(if $(filter True,$(shell \
	$(p) -c 'import sys; print(sys.version_info[:2] == (3, 12))' 2>/dev/null)),$(p))))

LAMBDA_NOTHING :=
LAMBDA_SPACE := $(LAMBDA_NOTHING) $(LAMBDA_NOTHING)

# $(call lambda-pyc,<root>,<dirs or files>): 3.12 bytecode for them, as if <root> were /var/task.
lambda-pyc = $(if $(LAMBDA_PYC_PYTHON),$(LAMBDA_PYC_PYTHON) -m compileall -q -j 0 \
	--invalidation-mode unchecked-hash -s "$(1)" -p $(LAMBDA_TASK_ROOT) $(2) >/dev/null)

# $(call lambda-requirements,<dir>...): the requirements.txt files those packages have.
lambda-requirements = $(foreach d,$(1),$(wildcard $(d)/requirements.txt))
# $(call lambda-deps,<dir>...): where their wheels are staged, named for the requirements files
# (packages with the same files share one installation).
lambda-deps = $(LAMBDA_DEPS)/$(subst $(LAMBDA_SPACE),-,$(strip \
	$(patsubst %/requirements.txt,%,$(call lambda-requirements,$(1)))))

# .aws-sam/lambda-deps/<dir>[-<dir>...]/.installed: the wheels those requirements need, for Lambda.
$(LAMBDA_DEPS)/%/.installed: $(wildcard */requirements.txt) $(wildcard constraints.txt) deploy/lambda.mk
	rm -rf "$(@D)" "$(@D).partial" && mkdir -p "$(@D).partial"
	$(LAMBDA_PIP) --target "$(@D).partial" $(addprefix -r ,$(call lambda-requirements,$(subst -, ,$*)))
	rm -rf "$(@D).partial/bin" $(foreach p,$(LAMBDA_IN_RUNTIME),"$(@D).partial/$(p)" "$(@D).partial/$(p)"-*.dist-info)
	$(call lambda-pyc,$(@D).partial,"$(@D).partial")
	touch "$(@D).partial/.installed" && mv "$(@D).partial" "$(@D)"

# $(call lambda-package,<deps dir>,<python packages>): wheels, the packages' sources, both models.
define lambda-package
	@test -n "$(ARTIFACTS_DIR)" || { echo "error: ARTIFACTS_DIR is not set: run 'make build' (sam build)" >&2; exit 2; }
	@for m in $(LAMBDA_MODELS); do test -f $$m/manifest.json || \
	  { echo "error: $$m/manifest.json is missing: run 'make train'" >&2; exit 2; }; done
	tar -C "$(1)" --exclude=.installed -cf - . | tar -xf - -C "$(ARTIFACTS_DIR)"
	tar -cf - --exclude=__pycache__ --exclude='*.pyc' $(2) $(LAMBDA_MODELS) | tar -xf - -C "$(ARTIFACTS_DIR)"
	$(call lambda-pyc,$(ARTIFACTS_DIR),$(foreach d,$(2),"$(ARTIFACTS_DIR)/$(d)"))
endef

build-InferenceFunction: $(call lambda-deps,infer)/.installed
	$(call lambda-package,$(call lambda-deps,infer),infer)

# The hook's texts (never committed): golden.jsonl, test_texts.jsonl (the whole test split by row
# id: the known-answer set) and probe.jsonl (every model's probe set), from the data set
# the models were trained on (training/golden.py refuses any other). And the behavioural suite
# (committed: ours, no data set needed) as suite.jsonl, whose answers every model recorded
# (canary.suite_answers.PACKAGE_FILE; the hook fails a model recorded on another suite).
LAMBDA_SUITE := training/suite/cases.jsonl
build-PreTrafficHookFunction: $(call lambda-deps,canary infer)/.installed
	$(call lambda-package,$(call lambda-deps,canary infer),canary infer)
	$(LAMBDA_PYTHON) -m training.golden --out "$(ARTIFACTS_DIR)/golden.jsonl" --models models
	cp "$(LAMBDA_SUITE)" "$(ARTIFACTS_DIR)/suite.jsonl"

build-CanaryJudgeFunction: $(call lambda-deps,canary infer)/.installed
	$(call lambda-package,$(call lambda-deps,canary infer),canary infer)

# The gate judges like the judge: the code and the models' manifests and known answers, no texts.
build-PostTrafficGateFunction: $(call lambda-deps,canary infer)/.installed
	$(call lambda-package,$(call lambda-deps,canary infer),canary infer)

# The probe sends the probe set (probe.jsonl, built like the hook's texts, never committed) and
# nothing else of the data set: the golden set and the test split are written aside and dropped.
build-CanaryProbeFunction: $(call lambda-deps,canary infer)/.installed
	$(call lambda-package,$(call lambda-deps,canary infer),canary infer)
	rm -rf "$(ARTIFACTS_DIR)/.texts"
	$(LAMBDA_PYTHON) -m training.golden --out "$(ARTIFACTS_DIR)/.texts/golden.jsonl" --models models
	mv "$(ARTIFACTS_DIR)/.texts/probe.jsonl" "$(ARTIFACTS_DIR)/probe.jsonl" && rm -rf "$(ARTIFACTS_DIR)/.texts"

.PHONY: build-InferenceFunction build-PreTrafficHookFunction build-CanaryJudgeFunction \
	build-PostTrafficGateFunction build-CanaryProbeFunction
