"""container/: the image and the Kubernetes manifests agree with wtrunner's settings and routes.

Docker cannot build or run images on these machines, so these tests read what can be read:
``container/Dockerfile`` (a small parser in dockerfile.py), its ignore file, and the objects that
``kubectl kustomize`` renders from every kustomization under ``container/k8s`` (the base and each
overlay, found at run time, and each component rendered on the base; manifests.py). Names and
values are checked against wtrunner itself (known.py): the ``Settings`` class (every variable it
reads) and the route table ``OPERATIONS``; the Grafana dashboard against the app's ``/metrics``;
the lock of the image's packages against setup.cfg. The image's health check script runs for
real against ``wtrunner serve``. The linters (hadolint, yamllint, the custom-resource validator,
kubernetes-validate --strict) run in the tox env ``container`` (``container/check``).
"""
