# mrclass-bids BIDS-App image.
#
#   docker build -t mrclass-bids .                                  # CPU (default, small)
#   docker build -t mrclass-bids:cuda \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .   # CUDA variant
#   docker run --rm --network none -u "$(id -u):$(id -g)" \
#       -v /data/dicom:/in:ro -v /data/out:/out mrclass-bids /in /out participant
#
# Two stages: "builder" installs everything into the virtual environment /opt/venv;
# the runtime stage copies only that venv and the heuristic onto the same slim base.
# Both stages MUST use the same BASE_IMAGE, because the venv's interpreter links are
# absolute paths into the base image's Python (/usr/local/bin/python3.11).
# Full user documentation: docs/containers.md.

ARG BASE_IMAGE=python:3.11-slim-bookworm

###############################################################################
FROM ${BASE_IMAGE} AS builder

# Where torch comes from. The CPU index keeps the image free of the multi-GB CUDA
# libraries; for a GPU image pass e.g. https://download.pytorch.org/whl/cu128.
# The version is always the one pinned in constraints.txt (torch==2.13.0; a local
# label such as +cpu / +cu128 satisfies that pin).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PYPI_INDEX=https://pypi.org/simple

# (No PYTHONDONTWRITEBYTECODE here: the .pyc files pip compiles make imports fast.)
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    NO_ET=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# 1) torch alone, from the torch index (PyPI only as an extra index for its plain
#    dependencies). Its own layer: it is by far the largest and changes least.
#    For the CPU index, fail the build if CUDA libraries slipped in anyway (e.g.
#    because the CPU index lacked the pinned version and PyPI's CUDA wheel won).
COPY constraints.txt ./
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c constraints.txt \
        --index-url "${TORCH_INDEX}" --extra-index-url "${PYPI_INDEX}" torch \
 && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
 && case "${TORCH_INDEX%/}" in \
      */cpu) ! pip list --format=freeze | grep -iE '^(nvidia-|triton)' \
             && python -c "import sys, torch; sys.exit(torch.version.cuda is not None)" ;; \
    esac

# 2) The remaining runtime dependencies, read from pyproject.toml, so that this layer
#    is rebuilt only when dependencies change, not on every code change. torch is
#    already satisfied and is not fetched again from PyPI.
COPY pyproject.toml ./
# hadolint ignore=DL3013
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt

# 3) The package itself, non-editable, with its shipped weights (package data);
#    the build fails if no *.pt weights were installed with it.
COPY README.md LICENSE ./
COPY bidsapp/ ./bidsapp/
RUN pip install --no-cache-dir -c constraints.txt . \
 && python -c "import sys, importlib.resources as r; w = r.files('bidsapp').joinpath('model/weights'); names = sorted(p.name for p in w.iterdir()) if w.is_dir() else []; print('shipped weights:', names); sys.exit(not any(n.endswith('.pt') for n in names))" \
 && pip check

###############################################################################
FROM ${BASE_IMAGE} AS runtime

ARG BASE_IMAGE
ARG VERSION=0.19.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
ARG SOURCE_URL=""
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

LABEL org.opencontainers.image.title="mrclass-bids" \
      org.opencontainers.image.description="BIDS-App that sorts MRI series by image content (CNN) into a validated BIDS dataset with confidence derivatives" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.authors="mrclass-bids developers" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.mrclass.torch-index="${TORCH_INDEX}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Non-root user. Any other uid (docker run -u "$(id -u):$(id -g)", Apptainer) works
# too: nothing under /opt is written at run time, HOME/caches are world-writable, and
# USER names a uid the image's /etc/passwd does not know (MONAI's import calls
# getpass.getuser(), which reads LOGNAME/USER/LNAME/USERNAME before the passwd file).
RUN useradd --no-log-init --create-home --home-dir /home/mrclass --uid 1000 --user-group mrclass \
 && chmod 1777 /home/mrclass \
 && mkdir -p /in /out /work \
 && chown mrclass:mrclass /out /work \
 && chmod 1777 /out /work

COPY --from=builder /opt/venv /opt/venv
COPY heuristics/ /opt/mrclass/heuristics/

# NO_ET / NIPYPE_NO_ET: no version-check calls home (heudiconv, nipype), so the app
# runs with --network none. Caches go to /tmp, writable for any uid.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    NO_ET=1 \
    NIPYPE_NO_ET=1 \
    MRCLASS_HEURISTIC=/opt/mrclass/heuristics/mrclass.py \
    HOME=/home/mrclass \
    USER=mrclass \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    PYTHONNOUSERSITE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Numeric, so that runtimes enforcing runAsNonRoot can verify it (= user mrclass).
USER 1000:1000
WORKDIR /tmp

# Build-time smoke test: the entry point imports and reports its version, dcm2niix
# (from the PyPI dcm2niix wheel) runs, and the heuristic is where MRCLASS_HEURISTIC says.
RUN mrclass-bids --version \
 && dcm2niix -h > /dev/null \
 && test -r "${MRCLASS_HEURISTIC}"

HEALTHCHECK --interval=10m --timeout=60s --start-period=5s --retries=1 \
    CMD ["mrclass-bids", "--version"]

ENTRYPOINT ["mrclass-bids"]
