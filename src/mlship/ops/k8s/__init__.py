"""Kubernetes: the kustomize tree of a project's releases and the canary recorded in the registry.

state.py    the rollout (live, canary, weight) read from and written to the registry's tags
render.py   that state → the files of deploy/k8s/ (base, gateway-api, kserve, monitoring)
rollout.py  the commands: manifests, canary, promote, abort (refusals touch nothing)
"""
