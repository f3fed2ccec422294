# clipforge on CPU: the package with its search extra (FAISS, FastAPI) over PyTorch's CPU wheel.
#
#   docker build -t clipforge .
#   docker run --rm -v "$PWD/runs:/app/runs" clipforge            # the demo: trains runs/demo
#   docker run --rm -p 8000:8000 -v "$PWD/runs:/app/runs" clipforge \
#       clipforge serve --index runs/demo/index --host 0.0.0.0     # after embed + index
#
# Nothing is downloaded when it runs: the demo's data set ships inside the package.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# tcmalloc: clipforge preloads it when present (faster allocation of activation buffers)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libtcmalloc-minimal4 \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the CPU index and pinned as in the Makefile: from PyPI a plain
# `pip install torch` pulls the multi-GB CUDA build
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY configs ./configs
# search: embed/index/serve; plots: the demo's loss_curve.png
RUN pip install ".[search,plots]"

EXPOSE 8000
CMD ["clipforge", "train", "--config", "configs/demo.yaml", "--overwrite"]
