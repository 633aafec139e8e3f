# A grading worker for `python -m autograder batch DIR --scheduler tcp://HOST:8786`.
#
#   docker build -f deploy/worker.Dockerfile -t minidl-grader .
#   docker run --rm --network host minidl-grader \
#       dask worker tcp://HOST:8786 --nthreads 1 --nworkers -1 --memory-limit 0
#
# The course's own environment (minidl, the autograder, PyTorch), run as root: learner code then
# runs as `nobody` (see the README, "Run the grader as root in a container"), which can run this
# Python but read nothing of root's. A worker needs no course files and no secret: each task
# brings the notebook's bytes and the expected values, and the report goes back to the client.
FROM python:3.11-slim

WORKDIR /opt/minidl
COPY pyproject.toml constraints.txt README.md ./
COPY minidl ./minidl
COPY autograder ./autograder
# PyTorch's CPU wheels keep the image small; drop the index for a CUDA worker.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
        -c constraints.txt -e ".[cluster]" \
    && chmod -R a+rX /opt/minidl /usr/local

# Root, so that learner code runs as `nobody`. One grading task at a time per worker process (a
# notebook's kernel and checker are processes of their own), one process per core; Dask's memory
# manager watches the worker process, not the learner processes, which have their own limits, so
# it is switched off (--memory-limit 0). No ENTRYPOINT: Dask's Kubernetes operator gives the
# container its own command (dask scheduler, dask worker ...) and uses this image for both.
USER root
CMD ["dask", "worker", "--help"]
