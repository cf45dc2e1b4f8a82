"""container/: the image and the Kubernetes manifests agree with wtrunner's settings and routes.

Docker cannot build or run images on these machines, so these tests read what can be read:
``container/Dockerfile`` (a small parser in dockerfile.py), its ignore file, and the objects that
``kubectl kustomize`` renders from every kustomization under ``container/k8s`` (the base and each
overlay, found at run time; manifests.py). Names and values are checked against wtrunner itself
(known.py): the ``Settings`` class (every variable it reads) and the route table ``OPERATIONS``.
The image's health check script runs for real against ``wtrunner serve``. The linters (hadolint,
yamllint, kubernetes-validate --strict) run in the tox env ``container`` (``container/check``).
"""
