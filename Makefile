# Container images of labdeck, for people who have Docker.
#
#   make images    the server image (the server and the model servers) and one workspace image
#                  per environment in the settings (`labdeck envs list`; CONFIG=labdeck.toml
#                  for environments of your own)
#   make push      build, then push them all
#
# Names: $(IMAGE_REGISTRY)/labdeck:$(IMAGE_TAG) and $(IMAGE_REGISTRY)/workspace-<env>:$(IMAGE_TAG),
# the defaults of deploy/values.yaml. docs/install-kubernetes.md walks through it.

IMAGE_REGISTRY ?= ghcr.io/labdeck
IMAGE_TAG ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' src/labdeck/__init__.py)
DOCKER ?= docker
LABDECK ?= $(if $(wildcard .venv/bin/labdeck),.venv/bin/labdeck,labdeck)
PYTHON ?= python3
CONFIG ?=
BUILD_DIR ?= build/images

config_flag := $(if $(CONFIG),--config $(CONFIG))
ENVIRONMENTS ?= $(shell $(LABDECK) envs list --json $(config_flag) \
	| $(PYTHON) -c 'import json, sys; print(*(env["name"] for env in json.load(sys.stdin)))')

SERVER_IMAGE := $(IMAGE_REGISTRY)/labdeck:$(IMAGE_TAG)
workspace_image = $(IMAGE_REGISTRY)/workspace-$(1):$(IMAGE_TAG)
WORKSPACE_TARGETS := $(addprefix workspace-image-,$(ENVIRONMENTS))
PUSH_TARGETS := $(addprefix push-workspace-,$(ENVIRONMENTS))

.PHONY: images push check-docker server-image workspace-images push-server \
	$(WORKSPACE_TARGETS) $(PUSH_TARGETS)

images: server-image workspace-images

push: push-server $(PUSH_TARGETS)

# `docker` may be missing, or present without an engine to talk to (as on the machine this
# was written on): either way, say so before anything is built.
check-docker:
	@command -v $(DOCKER) >/dev/null 2>&1 || { echo "error: '$(DOCKER)' was not found on PATH; building images needs Docker (or DOCKER=podman)" >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "error: '$(DOCKER)' cannot reach a container engine; start Docker, or run this on a machine that has one" >&2; exit 1; }

server-image: check-docker
	$(DOCKER) build -f deploy/images/server.Dockerfile -t $(SERVER_IMAGE) .

workspace-images: $(WORKSPACE_TARGETS)
	@test -n "$(strip $(ENVIRONMENTS))" || { echo "error: no environments: '$(LABDECK) envs list' failed or listed none (set LABDECK= or ENVIRONMENTS=)" >&2; exit 1; }

# Each environment's build context (Dockerfile, envkit/, its lock file) is written by labdeck.
$(WORKSPACE_TARGETS): workspace-image-%: check-docker
	$(LABDECK) envs dockerfile $* --context $(BUILD_DIR)/$* $(config_flag)
	$(DOCKER) build -t $(call workspace_image,$*) $(BUILD_DIR)/$*

push-server: server-image
	$(DOCKER) push $(SERVER_IMAGE)

$(PUSH_TARGETS): push-workspace-%: workspace-image-%
	$(DOCKER) push $(call workspace_image,$*)
