"""Tests of the deployment artefacts: deploy/Dockerfile, .dockerignore, the image itself and deploy/k8s.

The manifests are validated against the Kubernetes OpenAPI schemas bundled with ``kubernetes_validate`` and the
overlays are rendered by the real kustomize (``kubectl kustomize``, tests/support/deploy.py); no cluster is needed.
The Dockerfile is checked statically here, and ``test_image.py`` builds nothing itself but runs the image that
``make image`` built, when ``TEST_IMAGE`` names it (``make image-test``).
"""
